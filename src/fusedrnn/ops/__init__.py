"""What every backend shares: the registry that says which backend runs a call
(registry.py), the custom ops that wrap a backend's forward and backward for
autograd, torch.compile and the functorch transforms (custom_op.py), and the
output buffers its kernels write (outputs.py)."""
