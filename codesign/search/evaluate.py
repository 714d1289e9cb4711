"""A population of designs -> metrics: the search's one call into the model per population.

Example:
    >>> from codesign.search.experiment import load_experiment
    >>> from codesign.search.space import base_design, cluster_extra
    >>> exp = load_experiment("experiments/quickstart.toml")  # doctest: +SKIP
    >>> evaluate_designs([base_design(exp)], exp.job, cluster_extra(exp))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from codesign.model import tech
from codesign.model.metrics import TRAFFIC_ONLY
from codesign.model.perf import Job, evaluate_population, sized_cluster
from codesign.search.design import design_area, design_to_chip, design_to_cluster


def evaluate_designs(
    designs: list[dict[str, Any]],
    job: Job,
    cluster_extra: dict[str, Any] | None = None,
    prices: tech.Prices = tech.PRICES,
    traffic: Any = None,
    pools: str = "both",
) -> list[dict[str, Any]]:
    """Evaluate a population of designs in one parallel kernel call.

    Each design is a full design dict (see :mod:`codesign.search.design`); returns one metric
    dict per design (see :func:`codesign.model.perf.result_metrics`). A design whose chip
    cannot be built (its area estimate gives a reason) is infeasible whatever its mapping.
    ``traffic`` (a :class:`~codesign.model.serving.Traffic`, serving jobs): also each design's
    serving under that traffic (:func:`~codesign.model.serving.traffic_metrics`, ``pools``).
    """
    areas = [design_area(d) for d in designs]
    chips = [design_to_chip(d, area=a) for d, a in zip(designs, areas, strict=True)]
    clusters = [sized_cluster(c, design_to_cluster(d, cluster_extra))
                for c, d in zip(chips, designs, strict=True)]
    results = evaluate_population(chips, clusters, job, prices)
    for m, area in zip(results, areas, strict=True):
        if area.reason:
            m["feasible"] = False
            m["reason"] = area.reason
    if traffic is not None:
        from codesign.model.serving import traffic_metrics

        for m, chip, cluster in zip(results, chips, clusters, strict=True):
            if m["feasible"]:
                m.update(traffic_metrics(chip, cluster, job, traffic, pools, prices))
            else:
                m.update({k: 0.0 for k in TRAFFIC_ONLY})
    return results
