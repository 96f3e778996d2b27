"""The import structure of the packages, read from the AST of every module.

Every import statement counts: module level, inside functions, under ``TYPE_CHECKING``. hwmodel's
sub-packages form layers, each importing only the layers below it (the table :data:`LAYERS`; the
commands, hwmodel's top-level modules, sit above them all); hwmodel imports nothing of codesign
or devtools; the installed packages import nothing of devtools; and no module of codesign or
hwmodel reaches itself through its imports (no import circle, package ``__init__`` files
included).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("codesign", "hwmodel")
#: hwmodel's layers, lowest first: a module may import its own layer's modules and those of the
#: layers before it. The top-level modules of hwmodel (the commands) come after the last.
LAYERS: tuple[str, ...] = (
    "hwmodel.base",
    "hwmodel.target",
    "hwmodel.arch",
    "hwmodel.rtl",
    "hwmodel.cost",
    "hwmodel.model",
    "hwmodel.calibration",
)
COMMANDS = "hwmodel (commands)"


@cache
def modules() -> dict[str, Path]:
    """Dotted name → file of every module of the packages (a package is its ``__init__``)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names one import statement names (a ``from`` import: the module and each
    imported name below it, which may be a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".")
        if modules()[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


@cache
def imports() -> dict[str, frozenset[str]]:
    """Module → the first-party modules (or other top-level names, e.g. ``devtools``) it imports."""
    known = modules()
    graph: dict[str, frozenset[str]] = {}
    for module, path in known.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _targets(module, node):
                while name and name not in known and "." in name:
                    name = name.rpartition(".")[0]
                if name in known or name == "devtools":
                    found.add(name)
        found.discard(module)
        graph[module] = frozenset(found)
    return graph


def layer_of(module: str) -> str:
    """The layer of a hwmodel module (:data:`LAYERS` or :data:`COMMANDS`)."""
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return COMMANDS


def rank(module: str) -> int:
    layer = layer_of(module)
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


def hwmodel_modules() -> list[str]:
    return [m for m in modules() if m.startswith("hwmodel.")]


def test_the_graph_sees_every_kind_of_import() -> None:
    """The reader counts function-level and TYPE_CHECKING imports and resolves relative ones (a
    test that found nothing would pass any layout)."""
    graph = imports()
    assert "hwmodel.rtl.nonlinear" in graph["hwmodel.cost.nonlinear"]  # inside a function
    assert "hwmodel.rtl.testbench" in graph["codesign.export"]  # under TYPE_CHECKING
    assert "codesign.data._split" in graph["codesign.data._folder"]  # relative
    assert sum(len(v) for v in graph.values()) > 300


@pytest.mark.parametrize("module", hwmodel_modules())
def test_hwmodel_imports_only_downwards(module: str) -> None:
    up = sorted(t for t in imports()[module] if t.startswith("hwmodel.") and rank(t) > rank(module))
    assert not up, f"{module} ({layer_of(module)}) imports {up} from a layer above it"


def test_every_layer_holds_modules_and_the_top_level_holds_only_commands() -> None:
    layers = {layer_of(m) for m in hwmodel_modules()}
    assert set(LAYERS) <= layers
    commands = sorted(m for m in hwmodel_modules() if layer_of(m) == COMMANDS)
    for module in commands:
        assert 'if __name__ == "__main__":' in modules()[module].read_text(encoding="utf-8"), (
            f"{module} sits on hwmodel's top level but is not a command: give it a layer"
        )


def test_hwmodel_does_not_import_codesign_or_devtools() -> None:
    bad = {
        m: sorted(t for t in ts if not t.startswith("hwmodel"))
        for m, ts in imports().items()
        if m.startswith("hwmodel")
    }
    assert not {m: ts for m, ts in bad.items() if ts}


def test_the_installed_packages_do_not_import_devtools() -> None:
    assert not sorted(m for m, ts in imports().items() if "devtools" in ts)


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def test_cycle_finder_finds_a_circle() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_circle_among_codesign_and_hwmodel_modules() -> None:
    assert _cycles(dict(imports())) == []
