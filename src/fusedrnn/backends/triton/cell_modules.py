"""Generated Triton source as an imported module.

Triton reads a @triton.jit function's source back from its file (the compiler
parses it, the interpreter rewrites it, and the kernel cache hashes it), so
generated text cannot simply be exec'd: it is written to a file and imported.
The file lives in the cache directory, FUSEDRNN_CACHE_DIR or the user's cache
(~/.cache/fusedrnn), under triton_cells/, named by a hash of its text: the same
text is the same file in every process, and a different text never overwrites
it. Written to a temporary file and renamed, so that a process importing it
never reads half a file. Where the cache cannot be written, the files go to a
temporary directory of this process, with one warning.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType

SUBDIRECTORY = "triton_cells"
# one import of a text at a time: two threads must not each exec the same module
LOADING = threading.Lock()
fallback_directory: Path | None = None


def cache_directory() -> Path:
    """Where generated modules are written: FUSEDRNN_CACHE_DIR, else the user's cache
    (XDG_CACHE_HOME or ~/.cache) /fusedrnn; then triton_cells/."""
    root = os.environ.get("FUSEDRNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fusedrnn")
    return Path(root) / SUBDIRECTORY


def load_module(text: str) -> ModuleType:
    """The module whose source is `text`, imported once a process."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    name = f"fusedrnn_triton_cell_{digest}"
    with LOADING:
        if name in sys.modules:
            return sys.modules[name]
        path = written(text, f"cell_{digest}.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as an import does: Triton looks functions' modules up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def written(text: str, filename: str) -> Path:
    """The path of a file holding `text`: in the cache, or where that fails in this process's own directory."""
    try:
        return write_once(cache_directory(), filename, text)
    except OSError as error:
        return write_once(temporary_directory(error), filename, text)


def write_once(directory: Path, filename: str, text: str) -> Path:
    """directory/filename holding text, written unless it already holds it (a file
    cut short by a crash, or edited, is written again)."""
    path = directory / filename
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def temporary_directory(error: OSError) -> Path:
    """This process's directory for generated modules, made (and the warning given) once."""
    global fallback_directory
    if fallback_directory is None:
        fallback_directory = Path(tempfile.mkdtemp(prefix="fusedrnn-triton-cells-"))
        atexit.register(shutil.rmtree, fallback_directory, True)
        warnings.warn(f"fusedrnn cannot write generated Triton cells to {cache_directory()} ({error}); "
                      f"they go to {fallback_directory} for this process; set FUSEDRNN_CACHE_DIR to a "
                      "writable directory to keep them", RuntimeWarning, stacklevel=4)
    return fallback_directory
