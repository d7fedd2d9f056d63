"""The package says what it needs: every third-party module that src/fusedrnn
imports, at the top of a module or inside a function, is declared in
pyproject.toml's dependencies or in an extra; torch has a lower bound only; and
what only an extra brings is imported lazily, so that the package, its CLI and
the torch backend work with none of the extras installed."""
import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "fusedrnn"

# import name -> distribution that provides it (cuda is a namespace: its packages are separate distributions)
DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "tqdm": "tqdm",
    "filelock": "filelock",
    "sympy": "sympy",
    "triton": "triton",
    "constraint": "python-constraint2",
    "matplotlib": "matplotlib",
    "cuda.core": "cuda-core",
    "cuda.bindings": "cuda-bindings",
    "cuda.pathfinder": "cuda-pathfinder",
}
# imported but deliberately not declared
UNDECLARED = {
    "flashrnn": "the benchmark's optional competitor (bench/providers.py), reported Unavailable when missing",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _declared() -> dict[str, list[str]]:
    """Canonical distribution name -> where it is declared ("dependencies" or the extras)."""
    project = _project()
    where: dict[str, list[str]] = {}
    groups = {"dependencies": project.get("dependencies", []), **project.get("optional-dependencies", {})}
    for group, requirements in groups.items():
        for requirement in requirements:
            name = _requirement_name(requirement)
            if name != _canonical(project["name"]):  # an extra that names other extras
                where.setdefault(name, []).append(group)
    return where


def _import_name(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cuda" else parts[0]


def _third_party_imports() -> dict[str, set[str]]:
    """Import name -> the files under src/fusedrnn that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "fusedrnn":
                    continue
                found.setdefault(_import_name(module), set()).add(str(path.relative_to(ROOT)))
    return found


def test_finds_the_imports():
    found = _third_party_imports()
    assert {"torch", "triton", "cuda.core"} <= set(found), sorted(found)


def test_every_import_is_known():
    unknown = {name: sorted(files) for name, files in _third_party_imports().items()
               if name not in DISTRIBUTIONS and name not in UNDECLARED}
    assert not unknown, f"add these to DISTRIBUTIONS (and to pyproject.toml) or UNDECLARED: {unknown}"


def test_every_import_is_declared():
    declared = _declared()
    missing = {name: DISTRIBUTIONS[name] for name in _third_party_imports()
               if name in DISTRIBUTIONS and _canonical(DISTRIBUTIONS[name]) not in declared}
    assert not missing, f"imported by src/fusedrnn but not in pyproject.toml: {missing}"


def test_undeclared_are_not_declared():
    assert not set(map(_canonical, UNDECLARED)) & set(_declared())


def _requirements(name: str, group: str = "dependencies") -> list[str]:
    project = _project()
    requirements = project["dependencies"] if group == "dependencies" else project["optional-dependencies"][group]
    return [r for r in requirements if _requirement_name(r) == name]


def test_torch_is_a_dependency_with_a_lower_bound_only():
    # pip then keeps a torch the user has (tools/setup.sh installs the CPU build first where there is none)
    (torch,) = _requirements("torch")
    assert re.search(r">=\s*2\.\d+", torch), torch
    assert not re.search(r"<|==|~=", torch), torch


def test_triton_has_no_upper_bound():
    # a newer torch ships a newer Triton: capping it would fight torch's own pin
    (triton,) = _requirements("triton", "triton")
    assert re.search(r">=\s*3\.\d+", triton), triton
    assert not re.search(r"<|==|~=", triton), triton


def _only_in_extras() -> list[str]:
    declared = _declared()
    return sorted({name.split(".")[0] for name, distribution in DISTRIBUTIONS.items()
                   if "dependencies" not in declared.get(_canonical(distribution), ["dependencies"])})


def test_runs_without_any_extra():
    """With every module that only an extra brings hidden: the package imports, the CLI's
    parser builds (it imports every command), the backends report, and the torch backend runs."""
    hidden = _only_in_extras() + sorted(UNDECLARED)
    assert {"triton", "cuda", "constraint", "matplotlib"} <= set(hidden)
    script = textwrap.dedent(f"""
        import sys

        HIDDEN = {hidden!r}

        class Hide:
            def __init__(self, finder):
                self.finder = finder

            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in HIDDEN or not hasattr(self.finder, "find_spec"):
                    return None
                return self.finder.find_spec(name, path, target)

        sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
        import torch

        import fusedrnn
        import fusedrnn.nn
        from fusedrnn.cli import build_parser

        build_parser()
        reasons = {{name: backend.reason for name, backend in fusedrnn.backends().items()
                    if not backend.available}}
        assert "pip install 'fusedrnn[triton]'" in reasons["triton"], reasons
        assert "pip install 'fusedrnn[cuda]'" in reasons["cuda_fused"], reasons
        x, R, b = torch.randn(2, 3, 4, 1, 8), torch.randn(4, 1, 8, 8) / 4, torch.zeros(4, 1, 8)
        y, final = fusedrnn.rnn(x, R, b, cell="lstm")
        assert y.shape == (2, 3, 1, 8)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in HIDDEN)
        assert not loaded, loaded
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_every_kernel_source_is_package_data():
    """An installed wheel carries every .cu / .cuh the NVRTC compiles read (pyproject's package-data)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    src = root / "src"
    missing = []
    for path in sorted(src.rglob("*.cu*")):
        if path.suffix not in (".cu", ".cuh"):
            continue
        shipped = any(path.is_relative_to(src / package.replace(".", "/"))
                      and any(fnmatch.fnmatch(str(path.relative_to(src / package.replace(".", "/"))), p) for p in globs)
                      for package, globs in patterns.items())
        if not shipped:
            missing.append(str(path.relative_to(src)))
    assert not missing, f"kernel sources outside package-data: {missing}"
