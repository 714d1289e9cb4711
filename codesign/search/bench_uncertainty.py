"""``codesign bench``'s uncertainty part: the bands of a 100-design front with 256 paired draws
(:data:`PROBLEM`), timed end to end as ``pareto --uncertainty`` does it: each design's best
mapping found again (the point evaluation), then its draws through the kernels and the
metrics of every draw."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

PROBLEM = {"name": "uncertainty-front-100x256", "experiment": "quickstart.toml",
           "designs": 100, "draws": 256, "seed": 0}
"""100 feasible designs of the quickstart space (seeded uniform draws of its parameters),
256 paired draws each."""


def _designs(exp: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` feasible designs of ``exp``'s space, seeded uniform draws of its parameters."""
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.space import base_design, cluster_extra, design_from_params

    rng = np.random.default_rng(seed)
    base = base_design(exp)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        batch = []
        for _ in range(2 * n):
            params: dict[str, Any] = {}
            for p in exp.space.params:
                if p.kind == "categorical":
                    params[p.name] = p.choices[rng.integers(len(p.choices))]
                elif p.kind == "int":
                    params[p.name] = int(rng.integers(int(p.low), int(p.high) + 1))
                else:
                    params[p.name] = float(rng.uniform(p.low, p.high))
            batch.append(design_from_params(base, params))
        metrics = evaluate_designs(batch, exp.job, cluster_extra(exp), exp.prices)
        out += [d for d, m in zip(batch, metrics, strict=True) if m["feasible"]]
    return out[:n]


def front_bands(experiments: Any) -> dict[str, Any]:
    """Time the bands of :data:`PROBLEM` (``experiments``: the experiments folder)."""
    from codesign.model.uncertainty.propagate import bands, design_draws, make_draws
    from codesign.search.design import design_area, design_to_chip, design_to_cluster
    from codesign.search.experiment import load_experiment
    from codesign.search.space import cluster_extra

    exp = load_experiment(experiments / PROBLEM["experiment"])
    designs = _designs(exp, PROBLEM["designs"], PROBLEM["seed"])
    draws = make_draws(PROBLEM["draws"], PROBLEM["seed"])

    def one(design: dict[str, Any], i: int) -> dict[str, tuple[float, float, float]]:
        chip = design_to_chip(design, area=design_area(design))
        cluster = design_to_cluster(design, cluster_extra(exp))
        return bands(design_draws(chip, cluster, exp.job, draws, prices=exp.prices,
                                  key=f"bench:{i}"))

    one(designs[0], 0)  # compile
    t0 = time.perf_counter()
    out = [one(d, i) for i, d in enumerate(designs)]
    seconds = time.perf_counter() - t0
    widths = [b["tokens_per_joule"][2] / b["tokens_per_joule"][0] for b in out]
    return {**PROBLEM, "seconds": seconds,
            "draws_per_s": PROBLEM["designs"] * PROBLEM["draws"] / seconds,
            "median_p90_over_p10_tokens_per_joule": float(np.median(widths))}
