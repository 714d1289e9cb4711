"""Compare the designs of a run with a reference chip: side by side, with what changed.

Example:
    >>> from codesign.compare import compare_run
    >>> doc = compare_run("runs/inference_llama70b", "h100-sxm")  # doctest: +SKIP
    >>> doc["best"][0]["improvement"]["tokens_per_joule"] > 1  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import os
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from codesign import catalog
from codesign.config import Experiment
from codesign.design import CLUSTER_PARAMETERS, design_to_chip, design_to_cluster, project_chip
from codesign.errors import ConfigError
from codesign.metrics import INFER_ONLY, METRICS, TRAIN_ONLY
from codesign.perf import evaluate, result_metrics, sized_cluster
from codesign.rundir import METRICS_ATTR, load_run, open_storage
from codesign.space import base_design, cluster_extra, design_from_params
from codesign.specs import InferJob
from codesign.study import front_trials

SPEC_FIELDS = ("tflops_bf16", "tflops_fp8", "tflops_fp4", "sram_mb", "hbm_gen", "hbm_stacks",
               "hbm_gb", "hbm_tbps", "scaleup_gbps", "scaleup_domain", "scaleout_gbps",
               "die_area_mm2", "tdp_w", "price_usd")


def baseline_metrics(exp: Experiment, chip_id: str) -> dict[str, Any]:
    """A catalog chip evaluated on the experiment's workload and cluster (same chip count)."""
    chip = catalog.get_chip(chip_id)
    base = base_design(exp)
    cluster = design_to_cluster(base, cluster_extra(exp))
    nic = None if chip.scaleout_gbps is not None else float(base["scaleout_gbps"])
    res = evaluate(chip, cluster, exp.job, scaleout_gbps=nic)
    return result_metrics(chip, sized_cluster(chip, cluster, nic), res, exp.job, exp.prices,
                          nic)


def _improvement(metric: str, direction: str, design: float, baseline: float) -> float | None:
    if not (isinstance(design, float | int) and isinstance(baseline, float | int)):
        return None
    if not (math.isfinite(design) and math.isfinite(baseline)) or design <= 0 or baseline <= 0:
        return None
    return design / baseline if direction == "maximize" else baseline / design


def compare_run(run_dir: str | os.PathLike[str], against: str,
                study: optuna.Study | None = None,
                front: list[FrozenTrial] | None = None) -> dict[str, Any]:
    """For each objective, the best feasible front design next to catalog chip ``against``:
    specs, metrics, improvement factors (> 1 = better) and the design parameters that differ
    from the chip projected into the design space. ``study``: the run's study if already
    open (it is loaded from the run's storage otherwise); ``front``: its
    :func:`codesign.study.front_trials` if already computed (comparing with several chips)."""
    if against not in catalog.chip_ids():
        raise ConfigError(None, "--against", f"one of: {', '.join(catalog.chip_ids())}", against)
    exp, run = load_run(run_dir)
    if study is None:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    ref_chip = catalog.get_chip(against)
    ref = baseline_metrics(exp, against)
    try:
        ref_design = project_chip(ref_chip)
    except ValueError:
        ref_design = {}
    base = base_design(exp)
    skip = TRAIN_ONLY if isinstance(exp.job, InferJob) else INFER_ONLY
    objectives = {o.metric for o in exp.objectives}
    shown = [k for k in METRICS if k not in skip and k not in objectives]  # every metric
    front = [t for t in (front if front is not None else front_trials(study))
             if METRICS_ATTR in t.user_attrs]
    best = []
    for i, obj in enumerate(exp.objectives):
        if not front:
            break
        pick = (max if obj.direction == "maximize" else min)(front, key=lambda t: t.values[i])
        design = design_from_params(base, pick.params)
        chip = design_to_chip(design)
        metrics = pick.user_attrs[METRICS_ATTR]
        best.append({
            "objective": obj.metric,
            "direction": obj.direction,
            "trial": pick.number,
            "params": pick.params,
            "spec": {k: getattr(chip, k) for k in SPEC_FIELDS},
            "metrics": {o.metric: metrics.get(o.metric) for o in exp.objectives}
            | {k: metrics.get(k) for k in shown},
            "improvement": {o.metric: _improvement(o.metric, o.direction,
                                                   metrics.get(o.metric), ref.get(o.metric))
                            for o in exp.objectives},
            "changed": {k: [ref_design.get(k), design[k]] for k in design
                        if k not in CLUSTER_PARAMETERS and k in ref_design
                        and ref_design[k] != design[k]},
        })
    return {
        "study": run.study_name,
        "baseline": {"id": against, "spec": {k: getattr(ref_chip, k) for k in SPEC_FIELDS},
                     "metrics": {k: ref.get(k) for k in best[0]["metrics"]} if best else ref,
                     "feasible": ref["feasible"], "reason": ref["reason"],
                     "design_projection": ref_design},
        "best": best,
    }
