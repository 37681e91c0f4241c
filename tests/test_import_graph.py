"""Imports point one way: no module of litenas imports, even inside a function, a module that
imports it back.

The graph is read from the source (``ast``), every ``import`` counted wherever it stands (a
function-level import that dodges a cycle at load time is still a cycle in the design), except
those under ``if TYPE_CHECKING:``, and with the package ``__init__`` modules an import runs first. :data:`KNOWN_CYCLES` would list tolerated cycles; none is left,
so any cycle fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "search_spaces", "evaluators", "latency_tables")
KNOWN_CYCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The litenas module ``name`` refers to (a name imported from a module is that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(filter(None, (_resolve(a.name, modules) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.update(filter(None, [_resolve(full if full in modules else base, modules)]))
    out.discard(me)
    return out | _package_inits(me, out, modules)


def _package_inits(me: str, imported: set[str], modules: dict[str, Path]) -> set[str]:
    """The packages whose ``__init__`` importing ``imported`` runs first (``a.b.c`` runs ``a`` and
    ``a.b``), but not those ``me`` stands in: their ``__init__`` has started before ``me`` loads.
    A cycle through a package's ``__init__`` is a load-time cycle like any other."""
    out = set()
    for name in imported:
        parts = name.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package in modules and me != package and not me.startswith(package + "."):
                out.add(package)
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_no_new_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    cycles = _strongly_connected(graph)
    unknown = [sorted(c) for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"import cycles between modules: {unknown}"
    gone = [sorted(known) for known in KNOWN_CYCLES if not any(c & known for c in cycles)]
    assert not gone, f"these cycles are gone: take them off KNOWN_CYCLES: {gone}"


def test_importing_a_submodule_depends_on_its_packages() -> None:
    modules = dict.fromkeys(["p", "p.q", "p.q.r", "s"], Path())
    assert _package_inits("s", {"p.q.r"}, modules) == {"p", "p.q"}
    assert _package_inits("p.q.x", {"p.q.r"}, modules) == set()  # inside both packages already


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
