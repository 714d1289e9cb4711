"""codesign: hardware-software co-design search for AI datacenter chips and clusters.

An Optuna study proposes chip and cluster designs; a numba-compiled analytical model scores
each one on an LLM workload with its best parallel mapping; Pareto fronts go to Parquet.
Start with ``codesign search experiments/quickstart.toml`` or :func:`codesign.perf.evaluate`;
look at a run with ``codesign.load_run("runs/quickstart")`` (:mod:`codesign.inspect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Run", "__version__", "load_run"]

if TYPE_CHECKING:
    from codesign.inspect import Run, load_run

_LAZY = {"load_run": "codesign.inspect", "Run": "codesign.inspect"}
"""Public names imported on first use, so ``import codesign`` stays cheap (no Optuna, pandas)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'codesign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
