"""`fusedrnn bench`: our backends beside cuDNN, attention and the torch loop."""
