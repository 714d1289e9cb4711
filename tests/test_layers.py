"""The package's layers (ARCHITECTURE.md): no import cycle, no upward import, no module
past 500 lines.

Every ``import`` and ``from ... import`` in ``codesign/`` is read from the source (function-local
ones and ``if TYPE_CHECKING:`` ones too: a lazy or a type-only import is still a dependency).
The layers, lowest first:

* ``codesign.errors`` and ``codesign._lazy``: shared by all, import nothing of the package;
* ``codesign.model.kernels``: numba, imports nothing of the package but itself;
* ``codesign.model``: specs, catalog, chip, cluster, efficiency, pack, perf; never the search,
  the results, the validation or the CLI; inside it, :data:`MODEL_ORDER` holds;
* ``codesign.search`` and ``codesign.validate``: the model and themselves, not each other;
* ``codesign.results``: the model and the search;
* ``codesign.cli``: anything; nothing imports it.

``codesign/__init__.py``, ``codesign/__main__.py`` and ``codesign/_legacy.py`` (the 0.1 import
paths) are outside the layers: they import lazily, by name, and only to re-export.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "codesign"
MAX_LINES = 500

ALLOWED = {
    # layer: the layers it may import (itself included)
    "shared": {"shared"},
    "kernels": {"kernels"},
    "model": {"shared", "kernels", "model"},
    "search": {"shared", "kernels", "model", "search"},
    "validate": {"shared", "kernels", "model", "validate"},
    "results": {"shared", "kernels", "model", "search", "results"},
    "cli": {"shared", "kernels", "model", "search", "validate", "results", "cli"},
}
OUTSIDE = {"codesign", "codesign._legacy", "codesign.__main__"}
"""Re-exporting entry points, outside the layers."""

MODEL_ORDER = [
    # inside the model, a module imports only modules of its own rank or lower
    {"codesign.model.specs", "codesign.model.tech", "codesign.model.metrics",
     "codesign.model.traffic", "codesign.model.chip", "codesign.model.cluster",
     "codesign.model.checkpoint", "codesign.model.reliability"},
    {"codesign.model.catalog", "codesign.model.catalog.platforms"},
    {"codesign.model.efficiency", "codesign.model.chip.area", "codesign.model.chip.datasheet",
     "codesign.model.chip.power", "codesign.model.chip.cost", "codesign.model.cluster.network",
     "codesign.model.cluster.facility", "codesign.model.cluster.build",
     "codesign.model.cluster.cooling"},
    {"codesign.model.catalog.assume"},
    {"codesign.model.pack"},
    {"codesign.model.perf"},
    {"codesign.model.serving"},
    {"codesign.model.uncertainty", "codesign.model.uncertainty.sources"},
    {"codesign.model.uncertainty.propagate"},
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(module: str) -> str:
    if module in ("codesign.errors", "codesign._lazy"):
        return "shared"
    if module.startswith("codesign.model.kernels"):
        return "kernels"
    for layer in ("model", "search", "validate", "results", "cli"):
        if module == f"codesign.{layer}" or module.startswith(f"codesign.{layer}."):
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, ``if TYPE_CHECKING:`` bodies included (a type-only import is a dependency
    too: a cycle through one is still a cycle)."""
    for node in ast.iter_child_nodes(tree):
        yield node
        yield from _nodes(node)


def imports_of(module: str) -> set[str]:
    """The package modules ``module`` imports (a name imported from a package that is itself a
    module counts as that module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m.split(".")[0] == "codesign" and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_import_names_a_module_that_exists() -> None:
    missing = {(m, i) for m, deps in GRAPH.items() for i in deps if i not in MODULES}
    assert not missing, missing


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> imported modules), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph.get(m, ())):
            if dep in OUTSIDE or dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and m not in OUTSIDE and (found := visit(m)):
            return found
    return None


def test_no_import_cycle() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (module, import) of ``graph`` that a module's layer may not import."""
    return sorted((m, dep) for m, deps in graph.items() if m not in OUTSIDE
                  for dep in deps if dep not in OUTSIDE
                  and layer_of(dep) not in ALLOWED[layer_of(m)])


def test_no_upward_import_between_layers() -> None:
    bad = _upward(GRAPH)
    assert not bad, "\n".join(f"{m} ({layer_of(m)}) imports {d} ({layer_of(d)})" for m, d in bad)


def test_nothing_imports_the_cli_or_the_package_root() -> None:
    bad = sorted((m, d) for m, deps in GRAPH.items() for d in deps
                 if m not in OUTSIDE and layer_of(m) != "cli"
                 and (d == "codesign.cli" or d.startswith("codesign.cli.") or d in OUTSIDE))
    assert not bad, bad


def _model_rank(module: str) -> int | None:
    for rank, group in enumerate(MODEL_ORDER):
        if module in group:
            return rank
    return None


def test_the_model_imports_downward_only() -> None:
    """specs/tech -> catalog -> efficiency, chip, cluster -> catalog.assume -> pack -> perf."""
    ranked = [m for m in GRAPH if m not in OUTSIDE and layer_of(m) == "model"
              and m != "codesign.model"]
    unranked = [m for m in ranked if _model_rank(m) is None]
    assert not unranked, f"place these in MODEL_ORDER: {unranked}"
    bad = [(m, d) for m in ranked for d in GRAPH[m]
           if layer_of(d) == "model" and d != "codesign.model"
           and (_model_rank(d) or 0) > (_model_rank(m) or 0)]
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_500_lines(module: str) -> None:
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{MODULES[module]}: {n} lines (split it by concept)"


def test_the_checks_catch_what_they_claim() -> None:
    """The detectors themselves, on made-up graphs: a cycle, an upward import, a kernel that
    imports the package and a clean graph."""
    clean = {"codesign.model.perf": {"codesign.model.specs"}, "codesign.model.specs": set(),
             "codesign.search.study": {"codesign.model.perf"}}
    assert _cycle(clean) is None and _upward(clean) == []
    cyclic = {**clean, "codesign.model.specs": {"codesign.model.perf"}}
    assert _cycle(cyclic) == ["codesign.model.perf", "codesign.model.specs", "codesign.model.perf"]
    upward = {**clean, "codesign.model.specs": {"codesign.search.study"}}
    assert _upward(upward) == [("codesign.model.specs", "codesign.search.study")]
    kernel = {"codesign.model.kernels.gemm": {"codesign.errors"}}
    assert _upward(kernel) == [("codesign.model.kernels.gemm", "codesign.errors")]
    cli = {"codesign.results.report": {"codesign.cli.format"}}
    assert _upward(cli) == [("codesign.results.report", "codesign.cli.format")]
