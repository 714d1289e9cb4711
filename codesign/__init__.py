"""codesign: hardware-software co-design search for AI datacenter chips and clusters.

An Optuna study proposes chip and cluster designs; a numba-compiled analytical model scores
each one on an LLM workload with its best parallel mapping; Pareto fronts go to Parquet.
Start with ``codesign search experiments/quickstart.toml`` or :func:`codesign.evaluate`;
look at a run with ``codesign.load_run("runs/quickstart")`` (:mod:`codesign.results`).

The package is layered (see ARCHITECTURE.md): :mod:`codesign.model` (specs, kernels, chip and
cluster physics), :mod:`codesign.search` (experiments, the study, its storage),
:mod:`codesign.results` (inspection, report, comparison), :mod:`codesign.validate` (the model
against published runs) and :mod:`codesign.cli`. A lower layer never imports a higher one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codesign import _legacy
from codesign._lazy import exports

__version__ = "0.2.0"

if TYPE_CHECKING:
    from codesign.model.perf import evaluate
    from codesign.results.inspect import Run, load_run

_PUBLIC = {
    "load_run": "codesign.results.inspect",
    "Run": "codesign.results.inspect",
    "evaluate": "codesign.model.perf",
}
"""Public names imported on first use, so ``import codesign`` stays cheap (no Optuna, pandas)."""
__all__ = ["Run", "__version__", "evaluate", "load_run"]
__getattr__, __dir__ = exports(__name__, _PUBLIC)

_legacy.install()  # codesign.perf, codesign.study, ... (the 0.1 paths) for one release
