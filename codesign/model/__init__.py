"""The performance, power, area and cost model: a chip and cluster on an LLM job -> metrics.

Data flows one way: :mod:`~codesign.model.specs` (dataclasses) -> :mod:`~codesign.model.pack`
(flat arrays) -> :mod:`~codesign.model.kernels` (numba: the best parallel mapping and its step
time, memory and energy) -> :mod:`~codesign.model.perf` (metrics). Around it:
:mod:`~codesign.model.catalog` (reference chips, models, published runs),
:mod:`~codesign.model.tech` (process, HBM, facility and price constants),
:mod:`~codesign.model.efficiency` (the fitted silicon x software-stack efficiencies),
:mod:`~codesign.model.chip` (area, power, cost of one package) and
:mod:`~codesign.model.cluster` (network and facility). Nothing here imports the search, the
results or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codesign._lazy import exports

if TYPE_CHECKING:
    from codesign.model.catalog import chips, get_chip, get_model, models
    from codesign.model.perf import evaluate, evaluate_population, result_metrics
    from codesign.model.specs import (
        ChipSpec,
        ClusterSpec,
        InferJob,
        InferResult,
        Mapping,
        ModelSpec,
        Result,
        TrainJob,
    )

_PUBLIC = {
    "evaluate": "codesign.model.perf",
    "evaluate_population": "codesign.model.perf",
    "result_metrics": "codesign.model.perf",
    "ChipSpec": "codesign.model.specs",
    "ClusterSpec": "codesign.model.specs",
    "ModelSpec": "codesign.model.specs",
    "TrainJob": "codesign.model.specs",
    "InferJob": "codesign.model.specs",
    "Mapping": "codesign.model.specs",
    "Result": "codesign.model.specs",
    "InferResult": "codesign.model.specs",
    "get_chip": "codesign.model.catalog",
    "get_model": "codesign.model.catalog",
    "chips": "codesign.model.catalog",
    "models": "codesign.model.catalog",
}
__all__ = [
    "ChipSpec",
    "ClusterSpec",
    "InferJob",
    "InferResult",
    "Mapping",
    "ModelSpec",
    "Result",
    "TrainJob",
    "chips",
    "evaluate",
    "evaluate_population",
    "get_chip",
    "get_model",
    "models",
    "result_metrics",
]
__getattr__, __dir__ = exports(__name__, _PUBLIC)
