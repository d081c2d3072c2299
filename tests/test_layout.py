"""The package layout: every subpackage imports, each imports only what its `__init__` docstring allows
("May import: ..."), and no import cycle runs between subpackages. Imports inside functions count too."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "workbench"
MAX_LINES = 600


def _unit(module: str) -> str | None:
    """The layer a dotted module belongs to: a subpackage or top-level module of workbench."""
    parts = module.split(".")
    if parts[0] != "workbench" or len(parts) < 2:
        return None
    return parts[1]


def _units() -> list[str]:
    out = [p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    out += [p.stem for p in PKG.glob("*.py") if p.stem != "__init__"]
    return sorted(out)


def _imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {unit: set() for unit in _units()}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        src = _unit(module)
        for target in _imports(path, module):
            dst = _unit(target)
            if src and dst and dst != src and dst in graph:
                graph[src].add(dst)
    return graph


def _allowed(unit: str) -> set[str] | None:
    init = PKG / unit / "__init__.py"
    if not init.exists():
        return None  # a top-level module (registry): its place is checked by the cycle test
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    match = re.search(r"May import:\s*(.+?)(?:\n\s*\n|$)", doc, re.S)
    assert match, f"workbench/{unit}/__init__.py must say what it may import ('May import: ...')"
    text = " ".join(match.group(1).split())
    if text.startswith("nothing"):
        return set()
    if text.startswith("every workbench package"):
        excluded = set(re.findall(r"except workbench\.(\w+)", text))
        return set(_units()) - excluded - {unit}
    return set(re.findall(r"workbench\.(\w+)", text))


@pytest.mark.parametrize("unit", _units())
def test_every_subpackage_imports(unit):
    importlib.import_module(f"workbench.{unit}")


@pytest.mark.parametrize("unit", [u for u in _units() if (PKG / u / "__init__.py").exists()])
def test_each_subpackage_imports_only_what_its_docstring_allows(unit):
    allowed = _allowed(unit)
    extra = _graph()[unit] - allowed
    assert not extra, f"workbench.{unit} imports {sorted(extra)}, but its __init__ allows only {sorted(allowed)}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour = {node: 0 for node in graph}  # 0 unseen, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == 1:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == 0 and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour[node] == 0 and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_between_subpackages():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_widgets_sit_on_top_and_the_core_imports_no_ui():
    for path in PKG.rglob("*.py"):
        for target in _imports(path, "workbench"):
            root = target.split(".")[0]
            assert root not in {"widgets", "panel", "plotly", "ipywidgets", "bokeh"}, f"{path} imports {target}"


def test_no_module_is_longer_than_a_reader_scrolls():
    long = {str(p.relative_to(ROOT)): n for d in ("workbench", "widgets") for p in (ROOT / d).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
