"""A check of the uncertainty bands themselves: on calibration.csv, leave one family out, the
share of measured values inside the predicted P10-P90 band (``codesign validate --bands``).

Each predicted row is evaluated again with its own mapping through the paired draws
(:func:`codesign.model.uncertainty.propagate.design_draws`); the model error it draws is
estimated from the residuals of the *other* families only
(:func:`~codesign.model.uncertainty.sources.fit_errors` ``without_family``), so a row never
sets the width of its own band. Power error: all power rows are one family (MLE3); leaving it
out leaves none, so those rows use the in-sample power error and are marked ``in_sample``.
The point predictions are the shipped stack's (``scripts/calibrate.py
--leave-one-family-out`` refits the stack per family; it moves the left-out median |error| by
1.7 points overall, README).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from codesign.model.specs import ClusterSpec, Mapping
from codesign.model.uncertainty.propagate import design_draws, make_draws, percentiles
from codesign.model.uncertainty.sources import ErrorModel, fit_errors, load_residuals
from codesign.validate.cases import Case
from codesign.validate.predictions import predict
from codesign.validate.residuals import kind_of

RESULT_METRIC = {"iteration_time_s": "step_time_s", "tokens_per_s_per_chip":
                 "tokens_per_s_per_chip", "output_tokens_per_s": "tokens_per_s",
                 "chip_power_w": "chip_power_w", "joules_per_token": "energy_per_token_j",
                 "ttft_s": "ttft_s", "itl_s": "itl_s"}
"""calibration.csv metric -> the metric of :func:`codesign.model.perf.result_metrics`."""
ROOMY = 100.0
"""HBM multiple a row that the model says does not fit is drawn with (predict() lets it fit
the same way: the run fitted, the memory model overestimates it)."""


def _errors_without(family: str, residuals: dict[str, np.ndarray],
                    cache: dict[str, tuple[ErrorModel, bool]]) -> tuple[ErrorModel, bool]:
    """The error model without ``family``; power falls back to in-sample where no other
    family has power rows (second item True)."""
    if family not in cache:
        e = fit_errors(residuals, without_family=family)
        in_sample = e.power_rows == 0
        if in_sample:
            full = fit_errors(residuals)
            e = replace(e, power_between=full.power_between, power_within=full.power_within)
        cache[family] = (e, in_sample)
    return cache[family]


def band_rows(cases: list[Case], n_draws: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """One dict per case: ``case_id``, ``family``, ``metric``, ``kind``, ``measured``,
    ``predicted``, ``p10``, ``p50``, ``p90``, ``inside`` (bool, None if not predicted),
    ``in_sample`` (power error from the family itself)."""
    draws = make_draws(n_draws, seed)
    residuals = load_residuals()
    cache: dict[str, tuple[ErrorModel, bool]] = {}
    out = []
    for case in cases:
        pred = predict(case)
        row: dict[str, Any] = {"case_id": case.case_id, "family": case.family,
                               "metric": case.metric, "kind": kind_of(case.metric),
                               "measured": case.measured, "predicted": pred["predicted"],
                               "p10": None, "p50": None, "p90": None, "inside": None,
                               "in_sample": False}
        out.append(row)
        if pred["predicted"] is None or case.metric not in RESULT_METRIC:
            continue
        chip = case.chip_spec
        if "memory_over_hbm_gb" in pred["assumed"]:
            chip = replace(chip, hbm_gb=chip.hbm_gb * ROOMY)
        job = case.job
        if "global_batch" in pred["assumed"]:
            job = replace(job, global_batch=pred["assumed"]["global_batch"])
        errors, in_sample = _errors_without(case.family, residuals, cache)
        d = design_draws(chip, ClusterSpec(n_chips=case.n_chips), job, draws,
                         mapping=Mapping(**pred["mapping"]), errors=errors, key=case.case_id,
                         assumed=tuple(pred["assumed"]))
        p10, p50, p90 = percentiles(d.get(RESULT_METRIC[case.metric], np.array([])))
        if math.isnan(p50):
            continue
        row.update(p10=p10, p50=p50, p90=p90, inside=bool(p10 <= case.measured <= p90),
                   in_sample=in_sample and row["kind"] != "speed")
    return out


def coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Share inside P10-P90 overall, ``by_family`` and ``by_kind`` (speed, power, energy):
    each ``{"rows", "inside", "share"}`` over the rows with a band."""
    def share(sel: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(sel)
        k = sum(r["inside"] for r in sel)
        return {"rows": n, "inside": k, "share": k / n if n else math.nan}

    banded = [r for r in rows if r["inside"] is not None]
    return {**share(banded),
            "by_family": {f: share([r for r in banded if r["family"] == f])
                          for f in sorted({r["family"] for r in banded})},
            "by_kind": {k: share([r for r in banded if r["kind"] == k])
                        for k in ("speed", "power", "energy")}}
