"""A run's front under the model's doubt (``codesign pareto --uncertainty``, the report): the
P10/P50/P90 band of every objective of every front design and baseline, and for each front
design and baseline the probability that the design beats it on each objective, over paired
draws (:mod:`codesign.model.uncertainty`).

Each design is evaluated again on the search's own path (its parameters on the experiment's
base design), its best mapping held across the draws. Objectives the draws do not cover (the
traffic metrics of a serving study: goodput, percentile latencies) get no band (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from codesign.model.uncertainty.propagate import (
    bands,
    design_draws,
    make_draws,
    win_probability,
)
from codesign.search.design import design_area, design_to_chip, design_to_cluster
from codesign.search.experiment import Experiment
from codesign.search.space import base_design, cluster_extra, design_from_params
from codesign.search.uncertainty import SEED, describe, parse_percentile

WIN_SURE = 0.9
"""A win with at least this probability is called sure; one below it is inside the noise."""


def objective_metric(name: str) -> str:
    """The metric an objective reads (``tokens_per_joule`` for ``tokens_per_joule@p10``)."""
    pct = parse_percentile(name)
    return name if pct is None else pct[0]


def _draws_of(exp: Experiment, design: dict[str, Any], draws: Any, key: str
              ) -> dict[str, np.ndarray]:
    area = design_area(design)
    if area.reason:
        return {"feasible": np.zeros(draws.n)}
    chip = design_to_chip(design, area=area)
    cluster = design_to_cluster(design, cluster_extra(exp))
    return design_draws(chip, cluster, exp.job, draws, prices=exp.prices, key=key)


def front_uncertainty(exp: Experiment, rows: list[dict[str, Any]],
                      baselines: dict[str, dict[str, Any] | None], n_draws: int = 256
                      ) -> dict[str, Any]:
    """Bands and win probabilities of the front ``rows`` (their ``param_*`` and ``trial``)
    against ``baselines`` ({chip id: its projection's design dict, None if it has none}).

    Returns :func:`~codesign.search.uncertainty.describe` plus ``objectives``,
    ``baselines`` ([{id, bands}]) and ``designs`` ([{trial, bands, p_beats: {id: {objective:
    probability}}, sure: {id: [objectives won with probability >= WIN_SURE]}}])."""
    draws = make_draws(n_draws, SEED)
    base = base_design(exp)
    objectives = [(o.metric, objective_metric(o.metric), o.direction) for o in exp.objectives]

    def summary(d: dict[str, np.ndarray]) -> dict[str, list[float]]:
        b = bands(d)
        return {name: list(b.get(metric, (math.nan,) * 3)) for name, metric, _ in objectives}

    base_draws = {cid: _draws_of(exp, design, draws, f"baseline:{cid}")
                  for cid, design in baselines.items() if design is not None}
    out_designs = []
    for row in rows:
        params = {k[6:]: v for k, v in row.items() if k.startswith("param_")}
        d = _draws_of(exp, design_from_params(base, params), draws, f"trial:{row['trial']}")
        p_beats: dict[str, dict[str, float]] = {}
        sure: dict[str, list[str]] = {}
        for cid, bd in base_draws.items():
            p_beats[cid] = {name: _win(d, bd, metric, direction)
                            for name, metric, direction in objectives}
            sure[cid] = [n for n, p in p_beats[cid].items() if p >= WIN_SURE]
        out_designs.append({"trial": row["trial"], "bands": summary(d), "p_beats": p_beats,
                            "sure": sure})
    return {**describe(draws), "objectives": [o[0] for o in objectives],
            "baselines": [{"id": cid, "bands": summary(bd)} for cid, bd in base_draws.items()],
            "designs": out_designs}


def _win(a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str,
         direction: str) -> float:
    if metric not in a or metric not in b:
        return math.nan
    return win_probability(a[metric], b[metric], direction)


def band_columns(unc: dict[str, Any]) -> list[dict[str, float]]:
    """Per front design (order of ``unc["designs"]``), flat columns for CSV and JSON rows:
    ``p10_<objective>``, ``p50_<objective>``, ``p90_<objective>`` and
    ``p_beats_<objective>_vs_<baseline>``."""
    out = []
    for d in unc["designs"]:
        row: dict[str, float] = {}
        for o, (p10, p50, p90) in d["bands"].items():
            row.update({f"p10_{o}": p10, f"p50_{o}": p50, f"p90_{o}": p90})
        for cid, ps in d["p_beats"].items():
            row.update({f"p_beats_{o}_vs_{cid}": p for o, p in ps.items()})
        out.append(row)
    return out


REPORT_DRAWS = 64
"""Paired draws behind the report's error bars and win probabilities (P to 1/64; ``codesign
pareto --uncertainty N`` for more)."""
REPORT_MAX_DESIGNS = 100
"""Front designs the report bands at most (a seeded sample beyond). At 100,000 trials the
report took 13.5 s with 200 designs x 128 draws and 10.5 s with 100 x 64, against the 10 s
asked of it (the hypervolume curve's :data:`~codesign.results.report.HV_POINTS` did the
rest)."""


def baseline_designs(exp: Experiment, chips: list[str]
                     ) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
    """``({chip id: its design as projected into exp's space, None if it cannot be},
    [the ids that cannot])``; a chip is a catalog id or a spec-sheet chip TOML
    (:func:`codesign.search.chip_file.resolve_chip`), anything else a ConfigError
    (``--against``)."""
    from codesign.results.compare import projected_design
    from codesign.search.chip_file import resolve_chip

    designs: dict[str, dict[str, Any] | None] = {}
    for chip in chips:
        resolve_chip(exp.chip_ref(chip), "--against")
        pd_ = projected_design(exp, chip)
        designs[chip] = None if pd_ is None else pd_[1]
    return designs, [c for c, d in designs.items() if d is None]


def report_bands(exp: Experiment, front: Any, chips: list[str],
                 n_draws: int = REPORT_DRAWS) -> tuple[dict[str, Any] | None, list[str]]:
    """The report's :func:`front_uncertainty` of the ``front`` DataFrame (its ``trial`` and
    ``param_*`` columns) against the projections of ``chips``, and notes (a sampled front,
    chips without a projection)."""
    notes = []
    rows = front.to_dict("records")
    if len(rows) > REPORT_MAX_DESIGNS:
        keep = sorted(np.random.default_rng(0).choice(len(rows), REPORT_MAX_DESIGNS,
                                                      replace=False))
        rows = [rows[i] for i in keep]
        notes.append(f"error bars: {REPORT_MAX_DESIGNS} of the {len(front)} front designs "
                     "(a random sample, seed 0)")
    designs, unprojected = baseline_designs(exp, chips)
    notes += [f"{chip}: no win probability (it cannot be projected into the space)"
              for chip in unprojected]
    if not rows:
        return None, notes
    return front_uncertainty(exp, rows, designs, n_draws), notes
