"""The caches on disk when they cannot be used: a cubin cache
this process cannot write (a read-only directory, another user's lock file) costs
one warning and a compile in memory; a cubin entry or tune.json of the wrong shape
(invalid bytes, valid JSON that is not what we wrote) is treated as corrupt, not
crashed on. Runs on a CPU; the compile tests need NVRTC (cuda.core)."""
import errno
import hashlib
import json
import os
import warnings

import pytest
import torch

ARCH = "sm_90"


@pytest.fixture
def nvrtc_compile():
    pytest.importorskip("cuda.core")
    from fusedrnn.backends.cuda.runtime import compile as nvrtc_compile

    return nvrtc_compile


@pytest.fixture
def kernel():
    """One small shipped kernel instantiation."""
    from fusedrnn.backends.cuda.fused.shipped import one_sm_configs

    return one_sm_configs()[0]


def _one_warning(record, *fragments):
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    for fragment in ("FUSEDRNN_CACHE_DIR", *fragments):
        assert fragment in messages[0], (fragment, messages[0])


def _compile_warned(nvrtc_compile, kernel, *fragments):
    """Compile twice: both return a cubin, only the first warns (naming the cache and FUSEDRNN_CACHE_DIR)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = nvrtc_compile.compile_kernel(kernel.name_expression, ARCH, kernel.source)
        again = nvrtc_compile.compile_kernel(kernel.name_expression, ARCH, kernel.source)
    _one_warning(record, *fragments)
    for compiled in (first, again):
        assert compiled.cubin.startswith(b"\x7fELF") and compiled.mangled_name and compiled.registers > 0
    return first


# the cubin cache that cannot be written

def test_cache_dir_that_cannot_be_created_compiles_in_memory(nvrtc_compile, kernel, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(blocker / "cache"))  # mkdir fails under a regular file
    _compile_warned(nvrtc_compile, kernel, str(blocker / "cache" / "cubin"))


def test_lock_of_another_user_compiles_in_memory(nvrtc_compile, kernel, tmp_path, monkeypatch):
    import filelock

    class ForeignLock:  # as filelock fails on a lock file another user owns (no write access to it)
        def __init__(self, path, *args, **kwargs):
            self.path = path

        def acquire(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", self.path)

        __enter__ = acquire

    monkeypatch.setattr(filelock, "FileLock", ForeignLock)
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    _compile_warned(nvrtc_compile, kernel, str(tmp_path / "cubin"), "Permission denied")


def test_entry_that_cannot_be_written_compiles_in_memory(nvrtc_compile, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    path = tmp_path / "cubin" / f"{nvrtc_compile.cache_key(kernel.name_expression, ARCH, kernel.source)}.entry"
    path.mkdir(parents=True)  # neither read nor replaced by a file
    _compile_warned(nvrtc_compile, kernel, str(tmp_path / "cubin"))
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only directory")
def test_read_only_cache_dir_compiles_in_memory(nvrtc_compile, kernel, tmp_path, monkeypatch):
    (tmp_path / "cubin").mkdir()
    (tmp_path / "cubin").chmod(0o555)
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    try:
        _compile_warned(nvrtc_compile, kernel, str(tmp_path / "cubin"))
    finally:
        (tmp_path / "cubin").chmod(0o755)


# cubin entries of the wrong shape

def _entry(header, cubin: bytes, nvrtc_compile) -> bytes:
    return nvrtc_compile.ENTRY_MAGIC + json.dumps(header).encode() + b"\n" + cubin


def test_entry_header_of_the_wrong_shape_is_rebuilt(nvrtc_compile, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    first = nvrtc_compile.compile_kernel(kernel.name_expression, ARCH, kernel.source)
    (path,) = (tmp_path / "cubin").glob("*.entry")
    good = dict(mangled_name=first.mangled_name, length=len(first.cubin), log=first.log,
                sha256=hashlib.sha256(first.cubin).hexdigest())
    headers = [[], None, 1, "x", {}, {k: v for k, v in good.items() if k != "mangled_name"},
               dict(good, mangled_name=5), dict(good, mangled_name=None), dict(good, log=7),
               dict(good, length=str(len(first.cubin))), dict(good, sha256=None)]
    monkeypatch.setattr(nvrtc_compile, "_nvrtc", lambda *args: first)  # the rebuild, not NVRTC, is under test
    for header in headers:
        path.write_bytes(_entry(header, first.cubin, nvrtc_compile))
        assert nvrtc_compile.read_entry(path) is None, header
        assert nvrtc_compile.compile_kernel(kernel.name_expression, ARCH, kernel.source) == first, header
        assert nvrtc_compile.read_entry(path) == first, header  # overwritten with a good entry
    path.write_bytes(nvrtc_compile.ENTRY_MAGIC + b"[" * 100_000 + b"\n" + first.cubin)  # JSON too deep to parse
    assert nvrtc_compile.read_entry(path) is None


# tune.json

@pytest.fixture
def tune_cache(tmp_path, monkeypatch):
    pytest.importorskip("constraint")
    from fusedrnn.backends.cuda.fused import tuned

    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    assert tuned.cache_path() == tmp_path / "tune.json"
    return tuned


def _gru_call():
    """A GRU fp16 call whose forward the rules run on one SM (nothing to compile)."""
    from fusedrnn.cells import get_cell
    from fusedrnn.problem import Problem

    return Problem(get_cell("gru"), 32, 1024, 4, 96, torch.float16, torch.device("cuda"), False, True)


@pytest.fixture
def winner(tune_cache):
    """The key of the call's forward and the model's first choice for it (not the rules')."""
    from fusedrnn.backends.cuda.fused.plan import plan
    from fusedrnn.tune import H100_SXM
    from fusedrnn.tune.search import model_ranking

    config = model_ranking("gru", torch.float16, 96, 4, 32, False, H100_SXM).candidates[0].config
    assert plan(_gru_call(), H100_SXM, "forward").config != config
    return tune_cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 32, False), config


def _lookup_warned(cache, key, *fragments):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert cache.lookup(key) is None
    _one_warning(record, str(cache.cache_path()), *fragments)


def test_tune_file_of_invalid_bytes_is_empty_with_one_warning(tune_cache, winner):
    key, config = winner
    path = tune_cache.cache_path()
    path.write_bytes(b"\xff\xfe\x00 not UTF-8 \x80")
    _lookup_warned(tune_cache, key)
    path.write_bytes(b"\x80 other invalid bytes")  # read again, still corrupt: no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune_cache.lookup(key) is None
    tune_cache.store(key, config, 1.0)  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune_cache.lookup(key) == config
    assert json.loads(path.read_text())["version"] == tune_cache.VERSION


@pytest.mark.parametrize("text", ["", "[]", "null", "1", '"entries"', "[" * 100_000, '{"entries": {}}',
                                  '{"version": 1, "sha256": "0", "entries": []}',
                                  '{"version": 1, "sha256": "0", "entries": {}}'],
                         ids=["empty", "list", "null", "number", "string", "deep", "no-version", "entries-list",
                              "wrong-digest"])
def test_tune_file_of_the_wrong_shape_is_empty_with_one_warning(tune_cache, winner, text):
    key, config = winner
    tune_cache.cache_path().write_text(text)
    _lookup_warned(tune_cache, key)
    tune_cache.store(key, config, 1.0)
    assert tune_cache.lookup(key) == config


def test_unreadable_tune_file_is_empty_with_one_warning(tune_cache, winner):
    key, _ = winner
    tune_cache.cache_path().mkdir()  # stat succeeds, reading fails (as for another user's file)
    _lookup_warned(tune_cache, key)


def test_tune_entries_of_the_wrong_shape_are_no_entries(tune_cache, winner):
    """Entries under an intact digest (hand-edited, or a buggy writer): none crashes a lookup or
    the planner, and a configuration of the wrong types is not returned to launch."""
    from fusedrnn.backends.cuda.fused.plan import plan
    from fusedrnn.backends.cuda.runtime.compile import source_digest
    from fusedrnn.tune import H100_SXM

    key, config = winner
    good, digest = tune_cache.config_to_json(config), source_digest(config.source)
    rules = plan(_gru_call(), H100_SXM, "forward")
    broken = ["x", None, [], {}, {"config": None}, {"config": []}, {"config": "ab"}, {"config": ["abc"]},
              {"config": dict(good, kind="bogus")}, {"config": dict(good, dtype="Tensor")},
              {"config": dict(good, dtype=5)}, {"config": dict(good, vec=0)}, {"config": dict(good, vec="8")},
              {"config": dict(good, DHP=96.0)}, {"config": dict(good, backward=1)},
              {"config": dict(good, no_such_field=1)}, {"config": {k: v for k, v in good.items() if k != "DHP"}},
              {"config": dict(good, options=-1)}, {"config": dict(good, sequences=-2)},
              {"config": good, "measured_ms": 1.0},  # no kernel digest: written by another version
              {"config": good, "measured_ms": 1.0, "kernel_digest": None},
              {"config": good, "measured_ms": 1.0, "kernel_digest": "0" * 64},  # its kernel since edited
              {"config": good, "measured_ms": 1.0, "kernel_digest": digest},  # no NVRTC version
              {"config": good, "measured_ms": 1.0, "kernel_digest": digest, "nvrtc": "0.1"}]  # another NVRTC
    path = tune_cache.cache_path()
    for entry in broken:
        tune_cache.write_entries(path, {key: entry})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the file is intact: nothing to warn of
            assert tune_cache.lookup(key) is None, entry
            assert plan(_gru_call(), H100_SXM, "forward") == rules, entry
    tune_cache.write_entries(path, {key: dict(config=good, measured_ms=1.0, **tune_cache.kernel_version(config))})
    assert tune_cache.lookup(key) == config
    assert plan(_gru_call(), H100_SXM, "forward").config == config
