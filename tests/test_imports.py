"""The package's import structure, read from the source with `ast` (nothing is imported):
no import cycle among fusedrnn's modules, counting the imports inside functions,
methods, if- and try-blocks too; and no module uses another module's private name
(`from .x import _name`, or `x._name` where x was bound by importing a fusedrnn module).

Only explicit import statements are edges: importing fusedrnn.a.b also runs
fusedrnn/a/__init__.py, but that implicit edge to the parent package is not counted
(every package would be a cycle otherwise). A package's __init__ importing its own
submodules is an edge like any other."""
import ast
from collections import deque
from pathlib import Path
from typing import Iterator, NamedTuple

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "fusedrnn"


def _modules() -> dict[str, Path]:
    """Dotted module name -> its file, for every module of the package (a package is its __init__.py)."""
    modules = {}
    for path in sorted((SOURCE / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()
# folders without an __init__.py (namespace packages): importable, but no code runs, so no edge
NAMESPACES = {".".join(d.relative_to(SOURCE).parts) for d in (SOURCE / PACKAGE).rglob("*")
              if d.is_dir() and d.name != "__pycache__"} - set(MODULES)
TREES = {module: ast.parse(path.read_text(), str(path)) for module, path in MODULES.items()}


def _is_private(name: str) -> bool:
    """_name and __name are private; __dunder__ names are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SOURCE.parent)}:{line}"


def _by_place(reports) -> list[str]:
    """'file:line: ...' reports, once each, by file then line."""
    return sorted(set(reports), key=lambda report: (report.split(":")[0], int(report.split(":")[1])))


class Import(NamedTuple):
    line: int
    target: str  # the fusedrnn module the statement imports (the edge's head), if it is one of MODULES
    name: str | None  # `from target import name`, name not a submodule
    binds: tuple[str, str] | None  # (local name, the fusedrnn module it is bound to)


def _base(module: str, level: int, relative: str | None) -> str:
    """The module that `from <level dots><relative> import ...`, written in `module`, imports from."""
    if level == 0:
        return relative
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join(package + ([relative] if relative else []))


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _imports(module: str) -> Iterator[Import]:
    """Every import of a fusedrnn module written in `module`, wherever the statement is."""
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_package(alias.name):
                    # `import a.b as c` binds c to a.b; `import a.b` binds a to a
                    top = alias.name.partition(".")[0]
                    binds = (alias.asname, alias.name) if alias.asname else (top, top)
                    yield Import(node.lineno, alias.name, None, binds)
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node.level, node.module)
            if not _in_package(base):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES or submodule in NAMESPACES:  # `from . import x`: the edge is to x
                    yield Import(node.lineno, submodule, None, (alias.asname or alias.name, submodule))
                else:  # `from .pkg import name`: the edge is to pkg (its __init__)
                    yield Import(node.lineno, base, alias.name, None)


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}; no self edges."""
    graph = {module: {} for module in MODULES}
    for module in MODULES:
        for imp in _imports(module):
            if imp.target in MODULES and imp.target != module:
                graph[module].setdefault(imp.target, imp.line)
    return graph


def _components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _shortest_path(graph, start: str, end: str, within: set[str]) -> list[str]:
    """A shortest path start -> ... -> end through the modules `within` (breadth first)."""
    previous = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        if v == end:
            break
        for w in sorted(graph[v]):
            if w in within and w not in previous:
                previous[w] = v
                queue.append(w)
    path = [end]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def _cycles(graph) -> list[list[str]]:
    """Cycles [a, b, ..., a] such that every import edge that lies on some cycle is on one of
    them: for each edge u -> v inside a component, u -> v and a shortest way back from v to u.
    Each cycle is rotated to start at its smallest module, and listed once."""
    cycles = set()
    for component in _components(graph):
        within = set(component)
        for u in component:
            for v in graph[u]:
                if v in within:
                    cycle = [u] + _shortest_path(graph, v, u, within)[:-1]
                    first = cycle.index(min(cycle))
                    cycle = cycle[first:] + cycle[:first]
                    cycles.add(tuple(cycle + cycle[:1]))
    return sorted(map(list, cycles), key=lambda c: (len(c), c))


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def test_no_import_cycles():
    graph = _graph()
    cycles = _cycles(graph)
    report = []
    for cycle in cycles:
        report.append(" -> ".join(cycle))
        edges = zip(cycle, cycle[1:])
        report.append("    " + ", ".join(f"{_where(u, graph[u][v])} imports {_short(v)}" for u, v in edges))
    assert not cycles, f"{len(cycles)} import cycles (each import on a cycle is on one of these):\n" + "\n".join(report)


def test_imports_resolve():
    """Every fusedrnn module imported exists (else the tests here would not see its edges)."""
    missing = _by_place(f"{_where(module, imp.line)}: {imp.target}" for module in MODULES for imp in _imports(module)
                        if imp.target not in MODULES and imp.target not in NAMESPACES)
    assert not missing, f"{len(missing)} imports of fusedrnn modules that do not exist:\n" + "\n".join(missing)


def _module_names(module: str) -> dict[str, str]:
    """Local name -> fusedrnn module, for the names `module` binds by importing a module
    (anywhere in the file: a name bound so in one function is taken for that module everywhere)."""
    return dict(imp.binds for imp in _imports(module) if imp.binds)


def _module_of(expression: ast.expr, names: dict[str, str]) -> str | None:
    """The fusedrnn module that `name` or `name.sub.sub` refers to, else None."""
    if isinstance(expression, ast.Name):
        return names.get(expression.id)
    if isinstance(expression, ast.Attribute):
        parent = _module_of(expression.value, names)
        submodule = f"{parent}.{expression.attr}"
        if parent and (submodule in MODULES or submodule in NAMESPACES):
            return submodule
    return None


def _private_uses(module: str) -> Iterator[str]:
    for imp in _imports(module):
        if imp.name and _is_private(imp.name) and imp.target != module:
            yield f"{_where(module, imp.line)}: from {imp.target} import {imp.name}"
    names = _module_names(module)
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _module_of(node.value, names)
            if owner and owner != module:
                yield f"{_where(module, node.lineno)}: {ast.unparse(node)} ({owner}.{node.attr})"


def test_no_private_names_across_modules():
    uses = _by_place(use for module in MODULES for use in _private_uses(module))
    assert not uses, f"{len(uses)} uses of another module's private name:\n" + "\n".join(uses)
