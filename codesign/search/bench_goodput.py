"""``codesign bench``'s goodput part: what the failure and checkpoint model adds to the cost of
evaluating a population (:data:`PROBLEM`): the same designs evaluated with the goodput metrics
and with them replaced by constants, interleaved, the median of each."""

from __future__ import annotations

import time
from typing import Any

PROBLEM = {"name": "goodput-overhead-goodput_100k", "experiment": "goodput_100k.toml",
           "designs": 128, "repeats": 5}
"""128 designs of the 100k-chip goodput experiment, evaluated 5 times each way."""


def goodput_overhead(experiments: Any) -> dict[str, Any]:
    """Seconds to evaluate :data:`PROBLEM`'s designs with and without the goodput metrics,
    and the overhead (with / without - 1)."""
    import numpy as np

    from codesign.model import perf
    from codesign.search.bench_uncertainty import _designs
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.experiment import load_experiment
    from codesign.search.space import cluster_extra

    exp = load_experiment(experiments / PROBLEM["experiment"])
    designs = _designs(exp, PROBLEM["designs"], 0)
    real = perf.goodput_metrics

    def without(*_a: Any, **_k: Any) -> dict[str, float]:
        return dict.fromkeys(perf.GOODPUT_METRICS, 0.0)

    def run() -> float:
        t0 = time.perf_counter()
        evaluate_designs(designs, exp.job, cluster_extra(exp), exp.prices)
        return time.perf_counter() - t0

    run()  # compile
    times: dict[str, list[float]] = {"with": [], "without": []}
    try:
        for _ in range(PROBLEM["repeats"]):
            perf.goodput_metrics = real
            times["with"].append(run())
            perf.goodput_metrics = without
            times["without"].append(run())
    finally:
        perf.goodput_metrics = real
    w, wo = float(np.median(times["with"])), float(np.median(times["without"]))
    return {**PROBLEM, "seconds_with": w, "seconds_without": wo, "overhead": w / wo - 1.0}
