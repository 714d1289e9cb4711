"""Predictions vs published measurements (``calibration.csv`` and any CSV with its columns).

Every row is one measured value of one run (:mod:`codesign.validate.cases` reads them). Fixed cells
(parallel degrees, micro-batch, recompute, ZeRO stage, sequence parallelism) are honoured; an
empty cell is unknown: mapping cells and a training row's global batch are searched, as a
performance engineer tuning the run would; everything else that is assumed (model cells,
chip cells, prompt lengths) is listed per row in ``assumed``. A row that cannot be predicted
gets ``predicted: None`` and a ``reason``; the other rows are still predicted.

Example:
    >>> from codesign.validate.predictions import load_cases, run_cases, summarize
    >>> cases = load_cases()  # the packaged calibration.csv
    >>> df = run_cases([c for c in cases if c.case_id.startswith("KOR22")])  # doctest: +SKIP
    >>> summarize(df)["median_abs_error_pct"] < 10  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from codesign.model.efficiency import Efficiency, Stack
from codesign.model.pack import UnknownSpecError
from codesign.model.perf import AnyResult, evaluate
from codesign.model.specs import ClusterSpec, InferResult
from codesign.validate.cases import (
    ASSUMED_INPUT_LEN,
    ASSUMED_OUTPUT_LEN,
    COLUMNS,
    GB_CANDIDATES,
    GB_MAX_TOKENS,
    INFER_METRICS,
    MODEL_DEFAULTS,
    TRAIN_METRICS,
    UNFUSED_ATTENTION_FAMILIES,
    Case,
    default_cases_path,
    family_of,
    load_cases,
)

__all__ = [
    "ASSUMED_INPUT_LEN", "ASSUMED_OUTPUT_LEN", "CASE_KEYS", "COLUMNS", "GB_CANDIDATES",
    "GB_MAX_TOKENS",
    "INFER_METRICS", "MODEL_DEFAULTS", "TRAIN_METRICS", "UNFUSED_ATTENTION_FAMILIES", "Case",
    "compact", "default_cases_path", "error_stats", "family_of", "load_cases", "predict",
    "run_cases", "summarize",
]

OOM_PREFIX = "out of memory"
MEMORY_SCALES = (1.25, 1.5, 2.0, 3.0, 4.0)
"""HBM capacities (x the chip's) tried, smallest first, when no mapping of a row fits: the
measured run did fit, so an out-of-memory verdict is the memory model's error, not the
run's; the row is predicted at the smallest capacity that fits and the overshoot is listed
in ``assumed`` (``memory_over_hbm_gb``)."""

NODE_POWER_REASON = ("node_power_w is not predicted: the model has no whole-server power yet "
                     "(host CPUs, memory, fans, NICs and PSU losses of one node)")

CASE_KEYS = ("case_id", "workload", "family", "metric", "measured", "predicted", "error_pct",
             "feasible", "reason", "mapping", "assumed", "assumed_reasons", "conflicts",
             "catalog_model", "from_catalog", "moe")
"""Columns of :func:`run_cases` (and keys of each ``validate --json`` case)."""


def _metric(metric: str, res: AnyResult, n_chips: int) -> float:
    """The predicted value of ``metric`` from a feasible result (units of the metric)."""
    if metric == "iteration_time_s":
        return res.step_time_s
    if metric == "tokens_per_s_per_chip":
        return res.tokens_per_s / n_chips
    if metric == "output_tokens_per_s":
        return res.tokens_per_s
    if metric == "chip_power_w":
        return res.chip_power_w
    if metric == "joules_per_token":
        return n_chips * res.chip_power_w / res.tokens_per_s
    if metric in ("ttft_s", "itl_s") and isinstance(res, InferResult):
        return getattr(res, metric)
    raise AssertionError(f"{metric} of a {type(res).__name__}")  # cases.METRICS_OF rules it out


def predict(case: Case, eff: Efficiency | Stack | None = None) -> dict[str, Any]:
    """Predict one case: a dict with the keys of :data:`CASE_KEYS`; ``predicted`` and
    ``error_pct`` (= 100 (predicted - measured) / measured) are None with a ``reason`` when
    the row cannot be predicted. ``eff``: the efficiencies of every chip, or the software
    stack each chip's generation runs under (default: the calibrated stack, see
    :func:`codesign.model.efficiency.for_chip`). A searched global batch (``case.global_batches``)
    is the candidate with the highest throughput, listed in ``assumed``."""
    out: dict[str, Any] = {
        "case_id": case.case_id, "workload": case.workload, "family": case.family,
        "metric": case.metric, "measured": case.measured, "predicted": None, "error_pct": None,
        "feasible": False, "reason": case.reason or None, "mapping": None,
        "assumed": dict(case.assumed), "assumed_reasons": dict(case.assumed_reasons),
        "conflicts": dict(case.conflicts), "catalog_model": case.catalog_model,
        "from_catalog": dict(case.from_catalog), "moe": case.moe,
    }
    if case.reason or case.job is None or case.chip_spec is None:
        out["reason"] = case.reason or "the row lacks what the model needs"
        return out
    if case.metric == "node_power_w":
        out["reason"] = NODE_POWER_REASON
        return out
    best: tuple[int | None, AnyResult] | None = None
    last: AnyResult | None = None
    chip = case.chip_spec
    for scale in (1.0, *MEMORY_SCALES):
        if scale > 1.0:  # the run fitted its chips: the model's memory estimate is too high
            chip = replace(case.chip_spec, hbm_gb=case.chip_spec.hbm_gb * scale)
        for gb in case.global_batches or (None,):
            job = case.job if gb is None else replace(case.job, global_batch=gb)
            try:
                res = evaluate(chip, ClusterSpec(n_chips=case.n_chips), job, case.mapping,
                               eff=eff)
            except UnknownSpecError as exc:
                out["reason"] = str(exc)
                return out
            last = res
            if res.feasible and (best is None or res.tokens_per_s > best[1].tokens_per_s):
                best = (gb, res)
        if best is not None or not last.reason.startswith(OOM_PREFIX):
            break
    if best is None:
        assert last is not None
        tried = (f"every searched global batch ({', '.join(map(str, case.global_batches))} "
                 "sequences) is infeasible: " if case.global_batches else "")
        out["reason"] = tried + (last.reason or "infeasible")
        return out
    if chip is not case.chip_spec:
        over = best[1].memory_gb_per_chip - case.chip_spec.hbm_gb
        out["assumed"]["memory_over_hbm_gb"] = round(over, 2)
        out["assumed_reasons"]["memory_over_hbm_gb"] = (
            f"the model's memory estimate ({best[1].memory_gb_per_chip:.1f} GB per chip with "
            f"the best mapping) exceeds the chip's {case.chip_spec.hbm_gb:g} GB although the "
            "measured run fitted: predicted as if it fits (the memory model overestimates "
            "this run)")
    gb, res = best
    if gb is not None:
        out["assumed"]["global_batch"] = gb
        out["assumed_reasons"]["global_batch"] = (
            f"global_batch empty: searched over {', '.join(map(str, case.global_batches))} "
            f"sequences (base dp x micro-batch x 2^k, at most {GB_MAX_TOKENS} tokens per "
            "step), the highest throughput kept")
    out["feasible"] = True
    out["mapping"] = res.mapping.as_dict()
    pred = _metric(case.metric, res, case.n_chips)
    out["predicted"] = pred
    out["error_pct"] = 100.0 * (pred - case.measured) / case.measured
    return out


def run_cases(cases: list[Case], eff: Efficiency | Stack | None = None
              ) -> pd.DataFrame:
    """Predictions for every case, one row each (columns :data:`CASE_KEYS`)."""
    return pd.DataFrame([predict(c, eff) for c in cases], columns=list(CASE_KEYS))


def error_stats(err: pd.Series) -> dict[str, Any]:
    """rows, predicted (= n) and the median, mean and 90th percentile of |error| (%, linear
    interpolation between order statistics) of one group of rows; None where none."""
    a = err.dropna().abs().to_numpy(float)
    some = a.size > 0
    return {"rows": int(err.size), "predicted": int(a.size), "n": int(a.size),
            "median_abs_error_pct": float(np.median(a)) if some else None,
            "mean_abs_error_pct": float(a.mean()) if some else None,
            "p90_abs_error_pct": float(np.percentile(a, 90)) if some else None}


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Aggregate errors of :func:`run_cases` output: counts (``cases``, ``predicted``,
    ``not_predicted``) and |error| statistics (:func:`error_stats`: n, median, mean, p90, in %)
    overall, ``by_family`` (case-id prefix, :func:`family_of`), ``by_workload`` ("train",
    "infer") and ``moe_train`` (training rows of MoE models); ``not_predicted_reasons``
    counts the reasons of the rows without a prediction.

    Only ``case_id`` and ``error_pct`` are required; ``workload``, ``moe`` and ``reason``
    columns refine the groups when present."""
    err = df["error_pct"].astype(float)
    families = (df["family"] if "family" in df else df["case_id"].map(family_of)).astype(str)
    workload = df["workload"] if "workload" in df else pd.Series([""] * len(df), df.index)
    moe = df["moe"].astype(bool) if "moe" in df else pd.Series([False] * len(df), df.index)
    overall = error_stats(err)
    missing = df[err.isna()]
    reasons = (missing["reason"].fillna("").astype(str).value_counts().to_dict()
               if "reason" in df else {})
    return {
        "cases": len(df),
        "predicted": overall["predicted"],
        "not_predicted": int(len(df) - overall["predicted"]),
        **{k: v for k, v in overall.items() if k not in ("rows", "predicted")},
        "by_family": {f: error_stats(err[families == f]) for f in sorted(families.unique())},
        "by_workload": {w: error_stats(err[workload == w]) for w in ("train", "infer")},
        "moe_train": error_stats(err[(workload == "train") & moe]),
        "not_predicted_reasons": {str(k): int(v) for k, v in reasons.items()},
    }


def compact(values: dict[str, Any] | None, conflicts: bool = False) -> str:
    """One-line form of a case's ``assumed`` dict ("chip.sram_mb=89 global_batch=4096") or,
    with ``conflicts``, of its ``conflicts`` dict ("vocab=128000 (catalog 128256)")."""
    if not values:
        return ""

    def num(x: Any) -> str:
        return format(x, ".4g") if isinstance(x, float) else str(x)

    if conflicts:
        return " ".join(f"{k}={num(c['row'])} (catalog {num(c['catalog'])})"
                        for k, c in values.items())
    return " ".join(f"{k}={num(v)}" for k, v in values.items())
