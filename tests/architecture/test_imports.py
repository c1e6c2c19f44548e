"""The package's shape: no import cycles (module-level or inside functions), no oversized files, and
``bench`` never reaching into ``report``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "segscope"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every ``segscope`` module ``path`` imports, at module level or in a function body; imports under
    ``if TYPE_CHECKING:`` are left out (they never run)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` imports the module; `from mod import name` the module holding name
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `from segscope.x import f` -> module segscope.x
                name = name.rpartition(".")[0]
            if name and name != here:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the segscope modules it imports (explicit imports; ``from pkg import mod`` names ``mod``)."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    known = set(files)
    return {m: imported_modules(p, known) for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or ``None`` (iterative DFS, colours)."""
    colour: dict[str, int] = {}
    for start in sorted(graph):
        if colour.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour.get(child) == 1:
                    return path[path.index(child) :] + [child]
                if not colour.get(child):
                    colour[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(graph.get(child, ())))))
                    break
            else:
                colour[node] = 2
                stack.pop()
                path.pop()
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def package_graph() -> dict[str, set[str]]:
    """The module graph collapsed to top-level sub-packages (``segscope.bench.runner`` -> ``bench``)."""

    def top(m: str) -> str:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else "segscope"

    out: dict[str, set[str]] = {}
    for m, deps in import_graph().items():
        out.setdefault(top(m), set()).update(top(d) for d in deps if top(d) != top(m))
    return out


def test_no_cycles_between_subpackages():
    cycle = find_cycle(package_graph())
    assert cycle is None, "sub-packages import each other: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_bench_does_not_import_report():
    graph = import_graph()
    offenders = sorted(
        m
        for m in graph
        if m.startswith("segscope.bench") and any(d.startswith("segscope.report") for d in graph[m])
    )
    assert not offenders, f"{offenders} import segscope.report; the CLI renders the report after the bench"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_file_is_oversized(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (> {MAX_LINES}): split it"
