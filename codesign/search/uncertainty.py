"""Uncertainty bands where the tool answers: one evaluated design (``evaluate --uncertainty``),
the designs of a run's front against its baselines (``pareto --uncertainty``, the report),
and the percentile metrics a robust search optimises (``tokens_per_joule@p10``).

Every design of one answer gets the same paired draws
(:func:`codesign.model.uncertainty.propagate.make_draws` with one seed), so a win probability
compares the designs under the same doubt.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from codesign.model import tech
from codesign.model.specs import ChipSpec, ClusterSpec, InferJob, Mapping, TrainJob
from codesign.model.uncertainty.propagate import (
    PERCENTILES,
    bands,
    default_errors,
    design_draws,
    make_draws,
    percentiles,
)
from codesign.model.uncertainty.sources import SOURCES, Draws
from codesign.search.percentile_names import (  # noqa: F401 - re-exported
    BAND_METRICS,
    PERCENTILE_RE,
    parse_percentile,
)

DEFAULT_DRAWS = 256
"""Draws when ``--uncertainty`` is given without a number."""
SEED = 0
"""Seed of every answer's draws (the same seed, the same bands)."""
def describe(draws: Draws) -> dict[str, Any]:
    """What the bands assume: draws, seed, percentiles, the error model and the constants."""
    return {"draws": draws.n, "seed": draws.seed, "percentiles": list(PERCENTILES),
            "error_model": asdict(default_errors()),
            "sources": [{"name": s.name, "lo": s.lo, "hi": s.hi, "why": s.why}
                        for s in SOURCES],
            "mapping": "held at the point evaluation's best mapping in every draw"}


def design_bands(chip: ChipSpec, cluster: ClusterSpec, job: TrainJob | InferJob,
                 mapping: Mapping, n_draws: int = DEFAULT_DRAWS, *,
                 prices: tech.Prices = tech.PRICES, scaleout_gbps: float | None = None,
                 assumed: tuple[str, ...] = (), key: str | None = None) -> dict[str, Any]:
    """``evaluate --uncertainty``'s part: :func:`describe` plus ``bands`` ({metric: [P10,
    P50, P90]} of :data:`BAND_METRICS`) and ``feasible_share`` (draws in which the mapping
    runs)."""
    draws = make_draws(n_draws, SEED)
    d = design_draws(chip, cluster, job, draws, mapping=mapping, prices=prices,
                     scaleout_gbps=scaleout_gbps, key=key, assumed=assumed)
    b = bands(d)
    return {**describe(draws), "feasible_share": float(d["feasible"].mean()),
            "bands": {m: list(b[m]) for m in BAND_METRICS
                      if m in b and all(math.isfinite(x) for x in b[m])}}


def mapping_of(metrics: dict[str, Any]) -> Mapping:
    """The mapping a metric dict reports (its ``map_*`` keys)."""
    from dataclasses import fields

    return Mapping(**{f.name: metrics[f"map_{f.name}"] for f in fields(Mapping)
                      if f"map_{f.name}" in metrics})


ROBUST_KEY = "percentile-objective"
"""The one design key of every design behind a percentile metric (common random numbers)."""


def add_percentiles(results: list[dict[str, Any]], chips: list[ChipSpec],
                    clusters: list[ClusterSpec], job: TrainJob | InferJob,
                    prices: tech.Prices, names: tuple[str, ...], n_draws: int) -> None:
    """Set each ``metric@pNN`` of ``names`` in every result: the percentile of the metric over
    ``n_draws`` paired draws, the design's best mapping held (0.0 where the design is
    infeasible or no draw runs). ``clusters``: the designs' clusters before sizing.

    Every design gets the same draws, its own part of the model error included (common
    random numbers): a percentile then ranks designs by how they respond to the same doubt
    (throttling under the TDP, the weight of HBM energy, leakage or cost constants), never
    by the luck of their own draws."""
    wanted = [(n, *parse_percentile(n)) for n in names]
    draws = make_draws(n_draws, SEED)
    for m, chip, cluster in zip(results, chips, clusters, strict=True):
        vals = dict.fromkeys(names, 0.0)
        if m["feasible"]:
            d = design_draws(chip, cluster, job, draws, mapping=mapping_of(m), prices=prices,
                             key=ROBUST_KEY)
            for name, metric, pct in wanted:
                v = percentiles(d.get(metric, np.array([])), (pct,))[0]
                vals[name] = v if math.isfinite(v) else 0.0
        m.update(vals)
