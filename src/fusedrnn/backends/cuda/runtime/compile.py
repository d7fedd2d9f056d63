"""Run-time compilation of CUDA translation units: NVRTC through cuda.core,
into a cubin for the device's exact architecture, cached on disk. No policy:
the backends name the translation unit and the instantiation.

The cache key covers everything that changes the binary: the bytes of the
translation unit, of its prelude (a generated cell's struct: runtime/unit.py)
and of every header either includes (its include closure, so a kernel
family's cubins survive edits to another family's headers), the
instantiation, the architecture, the compiler options and NVRTC's version. Several processes may compile the same kernel at
once: the compile runs under a file lock, the entry is written to a temporary
file and renamed into place, and every entry carries its length and SHA-256,
so a truncated or corrupted file is detected and rebuilt instead of loaded.
A cache that cannot be written (a read-only directory, another user's lock
file) costs a warning and a compile in memory, never the kernel.
Nothing here needs a GPU: CI compiles every shipped kernel on a CPU machine.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from .unit import TranslationUnit, as_unit

# headers every backend shares (the cells, storage types, math); a translation unit's own
# directory is searched first
COMMON_HEADERS = Path(__file__).parent.parent / "csrc"
INCLUDE = re.compile(rb'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
ENTRY_MAGIC = b"fusedrnn-cubin-v1\n"
OPTIONS = dict(std="c++17", ptxas_options=["-v"])


@dataclass(frozen=True)
class Compiled:
    cubin: bytes
    mangled_name: str
    log: str  # NVRTC's and ptxas's report (registers, spills)

    @property
    def spill_bytes(self) -> int:
        """Bytes of register spills (stores + loads) ptxas reported."""
        return sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", self.log))

    @property
    def registers(self) -> int:
        found = re.findall(r"Used (\d+) registers", self.log)
        return max((int(n) for n in found), default=0)

    @property
    def stack_bytes(self) -> int:
        """The stack frame ptxas reported: local memory (arrays it could not keep in registers, spills)."""
        return max((int(n) for n in re.findall(r"(\d+) bytes stack frame", self.log)), default=0)

    @property
    def local_memory_instructions(self) -> int:
        """LDL and STL instructions in the cubin's code (sm_90 encodings; no disassembler needed)."""
        return local_memory_instructions(self.cubin)

    @property
    def uses_local_memory(self) -> bool:
        """Spills, a stack frame, or loads and stores of local memory: a kernel that keeps its
        fragments of R on chip has none."""
        return bool(self.spill_bytes or self.stack_bytes or self.local_memory_instructions)


# The low 12 bits of an sm_90 instruction's first 64-bit word select its opcode (with its operand
# form): LDL and STL in every form ptxas emits (checked against cuobjdump -sass on sm_90 cubins)
_LOCAL_MEMORY_OPCODES = (0x983, 0x387)


def local_memory_instructions(cubin: bytes) -> int:
    """How many instructions of the ELF cubin's code sections (.text.*) load or store local memory."""
    import struct

    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:  # ELF64
        raise ValueError("not a 64-bit ELF cubin")
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", cubin, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    count = 0
    for name, _, _, _, offset, size in headers:
        end = cubin.index(b"\0", names_at + name)
        if not cubin[names_at + name:end].startswith(b".text."):
            continue
        for at in range(offset, offset + size - 15, 16):  # 128-bit instructions
            word, = struct.unpack_from("<Q", cubin, at)
            count += (word & 0xFFF) in _LOCAL_MEMORY_OPCODES
    return count


def cache_dir() -> Path:
    # memoised per value of the environment: the tune cache beside it is looked up on every call
    environ = os.environ
    return _cache_dir(environ.get("FUSEDRNN_CACHE_DIR"), environ.get("XDG_CACHE_HOME"), environ.get("HOME"))


@functools.lru_cache(maxsize=8)
def _cache_dir(fusedrnn_cache_dir: str | None, xdg_cache_home: str | None, home: str | None) -> Path:
    """The directory for these values of the environment variables it depends on."""
    root = fusedrnn_cache_dir or os.path.join(xdg_cache_home or os.path.expanduser("~/.cache"), "fusedrnn")
    return Path(root) / "cubin"


def include_closure(source: Path | TranslationUnit) -> list[Path]:
    """The translation unit's file and every header it or its prelude includes with
    #include "...", transitively, each resolved as NVRTC does: beside the including file (the
    prelude is the file's text), then in the unit's directory, then in COMMON_HEADERS. Sorted;
    a header that is found nowhere is left to NVRTC to report."""
    unit = as_unit(source)
    file = unit.path.resolve()
    seen, pending = {}, [file] + included(unit.prelude.encode(), file, unit.path.parent)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = path.read_bytes()
        pending += included(seen[path], path, unit.path.parent)
    return sorted(seen)


def included(text: bytes, including: Path, unit_directory: Path) -> list[Path]:
    """The headers `text`, the contents of the file `including`, names with #include "..."."""
    found = []
    for name in INCLUDE.findall(text):
        for directory in (including.parent, unit_directory, COMMON_HEADERS):
            path = (directory / name.decode()).resolve()
            if path.is_file():
                found.append(path)
                break
    return found


@functools.lru_cache(maxsize=None)
def source_digest(source: Path | TranslationUnit) -> str:
    """SHA-256 over the include closure of a translation unit: names (relative to its
    directory's parent, so the same tree anywhere hashes the same) and bytes; then its
    prelude, where it has one (a unit without one hashes as its file alone)."""
    unit = as_unit(source)
    digest = hashlib.sha256()
    root = unit.path.resolve().parent.parent.parent
    for path in include_closure(unit):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    if unit.prelude:
        digest.update(b"prelude\0" + unit.prelude.encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def nvrtc_version() -> str:
    from cuda.bindings import nvrtc

    error, major, minor = nvrtc.nvrtcVersion()
    if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcVersion failed: {error}")
    return f"{major}.{minor}"


@functools.lru_cache(maxsize=None)
def include_dirs() -> tuple[str, ...]:
    import cuda.pathfinder

    found = []
    for lib in ("cudart", "cccl"):
        path = cuda.pathfinder.find_nvidia_header_directory(lib)
        if path is None:
            raise RuntimeError(f"CUDA headers for {lib!r} not found; pip install 'fusedrnn[cuda]' "
                               "(nvidia-cuda-runtime and nvidia-cccl wheels) or install the CUDA toolkit")
        found.append(path)
    return tuple(found)


def cache_key(name_expression: str, arch: str, source: Path | TranslationUnit) -> str:
    parts = [source_digest(source), as_unit(source).name, name_expression, arch, nvrtc_version(), json.dumps(OPTIONS, sort_keys=True)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def compile_kernel(name_expression: str, arch: str, source: Path | TranslationUnit) -> Compiled:
    """The cubin of one kernel instantiation, e.g. `fused_forward_kernel<Lstm, __half, 64, 1, 2, true, false>`,
    of the translation unit `source` (a TranslationUnit, or the path of a file compiled alone), for `arch`
    such as "sm_90": from the cache, or compiled and cached."""
    path = cache_dir() / f"{cache_key(name_expression, arch, source)}.entry"
    entry = read_entry(path)
    if entry is not None:
        return entry
    from filelock import FileLock

    # A cache this process cannot write (read-only, another user's lock file) must not cost the kernel:
    # compile it in memory. Only the cache's own file operations fall back; NVRTC's errors propagate.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        lock.acquire()
    except OSError as error:
        _cache_unwritable(path.parent, error)
        return _nvrtc(name_expression, arch, source)
    try:
        entry = read_entry(path)  # another process may have built it while we waited
        if entry is None:
            entry = _nvrtc(name_expression, arch, source)
            try:
                write_entry(path, entry)
            except OSError as error:
                _cache_unwritable(path.parent, error)
    finally:
        lock.release()
    return entry


_warned_unwritable: set[str] = set()


def _cache_unwritable(directory: Path, error: OSError) -> None:
    """Warn that kernels are compiled in memory, uncached: once a process for each
    directory, as every kernel of a run would otherwise repeat it."""
    if str(directory) in _warned_unwritable:
        return
    _warned_unwritable.add(str(directory))
    warnings.warn(f"fusedrnn cannot write its cubin cache {directory} ({error}): kernels are compiled in memory "
                  "and not cached; set FUSEDRNN_CACHE_DIR to a writable directory to cache them",
                  RuntimeWarning, stacklevel=3)


def _nvrtc(name_expression: str, arch: str, source: Path | TranslationUnit) -> Compiled:
    from cuda.core import Program, ProgramOptions

    unit = as_unit(source)
    options = ProgramOptions(name=unit.name, arch=arch,
                             include_path=[str(unit.path.parent), str(COMMON_HEADERS), *include_dirs()],
                             define_macro=[("FUSEDRNN_NVRTC", "1")], **OPTIONS)
    log = io.StringIO()
    try:
        code = Program(unit.text(), "c++", options).compile(
            "cubin", name_expressions=[name_expression], logs=log)
    except Exception as error:
        raise RuntimeError(f"NVRTC failed to compile {name_expression} for {arch}:\n{log.getvalue()}\n{error}") from error
    mangled = code.symbol_mapping[name_expression]
    mangled = mangled.decode() if isinstance(mangled, bytes) else mangled
    return Compiled(cubin=bytes(code.code), mangled_name=mangled, log=log.getvalue())


def write_entry(path: Path, entry: Compiled) -> None:
    header = json.dumps(dict(mangled_name=entry.mangled_name, length=len(entry.cubin), log=entry.log,
                             sha256=hashlib.sha256(entry.cubin).hexdigest())).encode()
    write_atomically(path, ENTRY_MAGIC + header + b"\n" + entry.cubin)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into `path` through a temporary file renamed into place: a reader
    sees the old file or the whole new one, never a part."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_entry(path: Path) -> Compiled | None:
    """The entry at `path`, or None when it is missing, unreadable, truncated or corrupted."""
    try:
        data = path.read_bytes()
    except OSError:  # missing, or unreadable: compile_kernel finds out whether it can write one
        return None
    if not data.startswith(ENTRY_MAGIC) or b"\n" not in data[len(ENTRY_MAGIC):]:
        return None
    header_line, cubin = data[len(ENTRY_MAGIC):].split(b"\n", 1)
    try:
        header = json.loads(header_line)
    except (ValueError, RecursionError):
        return None
    # valid JSON of another shape ([], null, a field missing or of the wrong type) is as corrupt
    if not (isinstance(header, dict) and isinstance(header.get("mangled_name"), str)
            and isinstance(header.get("log", ""), str)):
        return None
    if len(cubin) != header.get("length") or hashlib.sha256(cubin).hexdigest() != header.get("sha256"):
        return None
    return Compiled(cubin=cubin, mangled_name=header["mangled_name"], log=header.get("log", ""))
