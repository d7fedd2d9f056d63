import torch

from fusedrnn import arguments, cli, demo


def test_info_lists_every_backend(capsys):
    cli.main(["info"])
    out = capsys.readouterr().out
    assert "torch" in out and "available" in out and "lstm" in out


def test_group_tables_are_groups():
    for task in ("parity", "s3"):
        table = demo.group_table(task)
        n = table.shape[0]
        assert (table[0] == torch.arange(n)).all() and (table[:, 0] == torch.arange(n)).all()  # identity
        for row in table:
            assert sorted(row.tolist()) == list(range(n))  # latin square


def test_running_product_labels():
    table = demo.group_table("parity")
    tokens, labels = demo.make_batch(table, 4, 9, torch.Generator().manual_seed(0))
    assert (labels == tokens.cumsum(1) % 2).all()


def test_demo_runs_and_reports(capsys):
    cli.main(["demo", "--steps", "3", "--train-len", "8", "--batch", "4", "--hidden", "8", "--heads", "2"])
    out = capsys.readouterr().out
    assert "fusedrnn LSTM" in out and "causal attention" in out and "accuracy at T=32" in out


# --- bad option values: one argparse-style line, exit status 2, no traceback

import importlib.metadata  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

import fusedrnn  # noqa: E402

from fusedrnn.ops import registry  # noqa: E402

NO_GPU = not torch.cuda.is_available()
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks the errors of a machine without a CUDA GPU")


def _usage_error(capsys, argv) -> str:
    """Run `fusedrnn ARGV` in-process; it must exit with status 2 and print the
    usage and then exactly one line `fusedrnn CMD: error: ...`, no traceback.
    Returns that line."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, (argv, exit_info.value.code, captured.err)
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert any(line.startswith("usage: fusedrnn") for line in lines)  # after bench's progress bar, if any
    errors = [line for line in lines if "error:" in line]
    assert errors == [lines[-1]], captured.err
    return lines[-1]


@pytest.mark.parametrize("argv, expected", [
    (["bench", "--length", "0"], "fusedrnn bench: error: --length: expected a positive integer, got 0"),
    (["bench", "--batch", "-3"], "fusedrnn bench: error: --batch: expected a positive integer, got -3"),
    (["bench", "--batch", "two"], "fusedrnn bench: error: --batch: expected a positive integer, got 'two'"),
    (["bench", "--splits", "0x2"], "fusedrnn bench: error: --splits: expected DHxNH with a positive head dim"),
    (["bench", "--splits", "64"], "fusedrnn bench: error: --splits: expected DHxNH (head dim x heads)"),
    (["bench", "--splits", "64x12x2"], "fusedrnn bench: error: --splits: expected DHxNH"),
    (["bench", "--cells", "foo"], "fusedrnn bench: error: --cells: invalid choice: 'foo'"),
    (["bench", "--providers", "foo"], "fusedrnn bench: error: --providers: invalid choice: 'foo'"),
    (["tune", "--dh", "-5"], "fusedrnn tune: error: --dh: expected a positive integer, got -5"),
    (["tune", "--nh", "0"], "fusedrnn tune: error: --nh: expected a positive integer, got 0"),
    (["tune", "--batch", "0"], "fusedrnn tune: error: --batch: expected a positive integer, got 0"),
    (["tune", "--top-k", "0"], "fusedrnn tune: error: --top-k: expected a positive integer, got 0"),
    (["tune", "--device", "h100", "--dh", "64", "--nh", "12", "6"],
     "fusedrnn tune: error: --nh: expected one head count per head dim of --dh (1: 64), got 2: 12 6"),
    (["tune", "--device", "h100", "--dh", "100000", "--nh", "1"],
     "fusedrnn tune: error: --dh 100000 --nh 1: no cuda_fused configuration runs"),
    (["tune", "--device", "h200"], "fusedrnn tune: error: --device: invalid choice: 'h200'"),
    (["numerics", "--length", "0"], "fusedrnn numerics: error: --length: expected a positive integer, got 0"),
    (["numerics", "--window", "0"], "fusedrnn numerics: error: --window: expected a positive integer, got 0"),
    (["numerics", "--splits", "16x0"], "fusedrnn numerics: error: --splits: expected DHxNH"),
    (["demo", "--train-len", "0"], "fusedrnn demo: error: --train-len: expected a positive integer, got 0"),
    (["demo", "--heads", "0"], "fusedrnn demo: error: --heads: expected a positive integer, got 0"),
    (["demo", "--hidden", "6", "--heads", "4"], "fusedrnn demo: error: --heads: expected a divisor of --hidden=6"),
    (["demo", "--lr", "nan"], "fusedrnn demo: error: --lr: expected a positive finite number, got nan"),
    (["demo", "--seed", "-1"], "fusedrnn demo: error: --seed: expected an integer in [0, 2**63 - 1), got -1"),
    (["demo", "--device", "meta"], "fusedrnn demo: error: --device: expected auto, cpu, cuda or cuda:N"),
    (["demo", "--backend", "foo"], "fusedrnn demo: error: --backend: expected auto or one of cuda_fused, "),
    (["nope"], "fusedrnn: error: COMMAND: invalid choice: 'nope'"),
])
def test_bad_values_are_one_line_errors(capsys, argv, expected):
    assert _usage_error(capsys, argv).startswith(expected)


@needs_no_gpu
@pytest.mark.parametrize("argv, expected", [
    (["bench", "--providers", "cuda_fused", "cudnn_fp16", "flashrnn"],
     "fusedrnn bench: error: --providers: nothing to time here (cuda_fused: no CUDA GPU"),
    (["tune", "--table"], "fusedrnn tune: error: no CUDA GPU here; --device a100|h100|rtx4090 uses a recorded one"),
    (["numerics", "--backends", "cuda_fused", "cuda_alternating"],
     "fusedrnn numerics: error: --backends: none of the requested backends runs here (cuda_fused: no CUDA GPU"),
    (["demo", "--device", "cuda"], "fusedrnn demo: error: --device: got 'cuda', but there is no CUDA GPU here"),
    (["demo", "--backend", "cuda_fused"], "fusedrnn demo: error: --backend: cuda_fused is not available here"),
])
def test_what_this_machine_cannot_run_is_an_error(capsys, argv, expected, tmp_path):
    assert _usage_error(capsys, argv + (["--out", str(tmp_path)] if argv[0] in ("bench", "numerics") else [])
                        ).startswith(expected)
    assert not list(tmp_path.iterdir())  # nothing written


def test_unknown_backend_names_the_valid_ones(capsys):
    line = _usage_error(capsys, ["numerics", "--backends", "torch", "foo"])
    assert line.startswith("fusedrnn numerics: error: --backends: invalid choice: 'foo' (choose from ")
    assert all(f"'{name}'" in line for name in registry.names())


@needs_no_gpu
def test_numerics_skips_an_unavailable_backend_beside_one_that_runs(capsys, tmp_path):
    assert cli.main(["numerics", "--backends", "torch", "cuda_fused", "--dtypes", "bfloat16", "--splits", "4x1",
                     "--batch", "1", "--length", "6", "--window", "2", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert warning == ["fusedrnn numerics: warning: --backends: skipping cuda_fused, not available here: "
                       + fusedrnn.backends()["cuda_fused"].reason]
    assert "| 4×1 | torch/bfloat16 | " in captured.out and "- cuda_fused/bfloat16: " in captured.out


@pytest.mark.parametrize("command", ["bench", "numerics"])
def test_out_under_a_regular_file(capsys, tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _usage_error(capsys, [command, "--out", str(blocker / "results")])
    assert line.startswith(f"fusedrnn {command}: error: --out: cannot write to ")
    assert line.endswith("Not a directory")
    line = _usage_error(capsys, [command, "--out", str(blocker)])
    assert line == f"fusedrnn {command}: error: --out: expected a directory, got {str(blocker)!r}, which is a file"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_read_only_directory(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _usage_error(capsys, ["bench", "--out", str(locked)])
    finally:
        locked.chmod(0o700)
    assert line == f"fusedrnn bench: error: --out: cannot write to {str(locked)!r}: Permission denied"


def test_out_unwritable_directory_as_any_user(capsys, tmp_path, monkeypatch):
    """A directory refusing new files (read-only, as for a user other than root):
    the probe file's PermissionError is the error, before anything is timed."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(arguments.tempfile, "TemporaryFile", refuse)
    line = _usage_error(capsys, ["bench", "--providers", "torch", "--out", str(tmp_path)])
    assert line == f"fusedrnn bench: error: --out: cannot write to {str(tmp_path)!r}: Permission denied"


def test_bench_with_nothing_timed_writes_nothing(capsys, tmp_path):
    line = _usage_error(capsys, ["bench", "--providers", "torch_nn", "--cells", "slstm", "--splits", "4x1",
                                 "--batch", "1", "--length", "2", "--passes", "fwd", "--out", str(tmp_path)])
    assert line == "fusedrnn bench: error: nothing could be timed (torch_nn slstm: unavailable: torch.nn has no slstm)"
    assert not list(tmp_path.iterdir())


def _run_cli(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "fusedrnn.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=300)


@needs_no_gpu
def test_subprocess_bench_triton_on_a_cpu_machine(tmp_path):
    """The case of the issue as a user runs it: no TRITON_INTERPRET, so triton cannot run."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = _run_cli("bench", "--providers", "triton", "--out", str(tmp_path), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "fusedrnn bench: error: --providers: nothing to time here (triton: no CUDA GPU (set TRITON_INTERPRET=1 "
        "to run the kernels on CPU, slowly))")
    assert not list(tmp_path.iterdir())


def test_subprocess_bad_value():
    result = _run_cli("tune", "--dh", "-5")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == "fusedrnn tune: error: --dh: expected a positive integer, got -5"


def test_help_lists_every_command_on_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, description in cli.COMMANDS.items():
        assert re.search(rf"^ +{name} +{re.escape(description)}$", out, re.MULTILINE), (name, out)
    assert set(cli.COMMANDS) == {"info", "demo", "bench", "tune", "numerics"}


def test_info_prints_the_optional_packages(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    try:
        version = importlib.metadata.version("python-constraint2")
        assert f"  python-constraint2 {version} (import constraint)\n" in out
    except importlib.metadata.PackageNotFoundError:
        assert "  python-constraint2: not installed\n" in out
    assert "triton" in out and "cuda-core" in out and "flashrnn" in out
