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
from codesign.model.metrics import DECODE_CHIP_METRICS, TRAFFIC_ONLY
from codesign.model.perf import (
    Job,
    chip_metrics,
    chip_price_usd,
    evaluate_population,
    sized_cluster,
)
from codesign.search.design import decode_design, design_area, design_to_chip, design_to_cluster


def evaluate_designs(
    designs: list[dict[str, Any]],
    job: Job,
    cluster_extra: dict[str, Any] | None = None,
    prices: tech.Prices = tech.PRICES,
    traffic: Any = None,
    pools: str = "both",
    percentiles: tuple[str, ...] = (),
    draws: int = 64,
) -> list[dict[str, Any]]:
    """Evaluate a population of designs in one parallel kernel call.

    Each design is a full design dict (see :mod:`codesign.search.design`); returns one metric
    dict per design (see :func:`codesign.model.perf.result_metrics`). A design whose chip
    cannot be built (its area estimate gives a reason) is infeasible whatever its mapping.
    ``traffic`` (a :class:`~codesign.model.serving.Traffic`, serving jobs): also each design's
    serving under that traffic (:func:`~codesign.model.serving.traffic_metrics`, ``pools``),
    its decode pool on the chip of its ``decode_*`` parameters when it has any (a
    heterogeneous design: the metrics ``decode_*`` describe that chip; a decode chip that
    cannot be built makes the design infeasible). ``percentiles``: ``metric@pNN`` names, each
    the percentile of that metric over ``draws`` paired draws of the model's doubt
    (:func:`codesign.search.uncertainty.add_percentiles`; 0 where infeasible).
    """
    areas = [design_area(d) for d in designs]
    chips = [design_to_chip(d, area=a) for d, a in zip(designs, areas, strict=True)]
    plain = [design_to_cluster(d, cluster_extra) for d in designs]
    clusters = [sized_cluster(c, k) for c, k in zip(chips, plain, strict=True)]
    results = evaluate_population(chips, clusters, job, prices)
    for m, area in zip(results, areas, strict=True):
        if area.reason:
            m["feasible"] = False
            m["reason"] = area.reason
    if traffic is not None:
        _add_traffic(results, designs, chips, clusters, job, traffic, pools, prices)
    if percentiles:
        from codesign.search.uncertainty import add_percentiles

        add_percentiles(results, chips, plain, job, prices, percentiles, draws)
    return results


def _add_traffic(results: list[dict[str, Any]], designs: list[dict[str, Any]],
                 chips: list[Any], clusters: list[Any], job: Job, traffic: Any, pools: str,
                 prices: tech.Prices) -> None:
    """Each design's serving under ``traffic`` into its metrics, its decode pool on its
    ``decode_*`` chip (:func:`~codesign.search.design.decode_design`) or on its own chip."""
    from codesign.model.serving import traffic_metrics

    for m, design, chip, cluster in zip(results, designs, chips, clusters, strict=True):
        dec_design = decode_design(design)
        dec, dec_m = chip, m
        if dec_design is not None:
            area = design_area(dec_design)
            dec = design_to_chip(dec_design, name="decode", area=area)
            dec_m = {**chip_metrics(dec, chip_price_usd(dec, prices)), "hbm_gb": dec.hbm_gb}
            if area.reason and m["feasible"]:
                m["feasible"] = False
                m["reason"] = f"decode chip: {area.reason}"
        if m["feasible"]:
            m.update(traffic_metrics(chip, cluster, job, traffic, pools, prices,
                                     decode_chip=None if dec is chip else dec))
        else:
            m.update({k: 0.0 for k in TRAFFIC_ONLY})
        m.update({k: dec_m[v] for k, v in DECODE_CHIP_METRICS.items()})
