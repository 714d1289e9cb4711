"""Compare the designs of a run with a reference chip: side by side, with what changed.

One meaning of "vs a reference chip" everywhere (``pareto``, ``compare``, ``report``): the
chip **as projected into the run's search space** (:data:`BASELINE_MEANING`), i.e. the design
point the search itself evaluates for a baseline (:func:`codesign.search.design.project_chip`, then
:func:`codesign.search.space.project_params` and the experiment's fixed parameters), on the same
model path as every trial. The projection changes what the space cannot express (an HBM
generation it lacks, a die split, the NIC); :func:`projection` lists those changes so every
command shows them next to the numbers. The catalog chip evaluated as published is kept
alongside (``catalog`` in :func:`compare_run`), never mixed into the improvement factors.

Example:
    >>> from codesign.results.compare import compare_run
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

from codesign.model.metrics import INFER_ONLY, METRICS, TRAIN_ONLY
from codesign.model.pack import UnknownSpecError
from codesign.model.perf import chip_price_usd, evaluate, result_metrics, sized_cluster
from codesign.model.specs import ChipSpec, InferJob
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.chip_file import resolve_chip
from codesign.search.design import (
    CLUSTER_PARAMETERS,
    design_to_chip,
    design_to_cluster,
)
from codesign.search.experiment import Experiment
from codesign.search.front import front_trials
from codesign.search.references import reference_params
from codesign.search.space import base_design, cluster_extra, design_from_params
from codesign.search.storage.rundir import METRICS_ATTR, load_run, open_storage

SPEC_FIELDS = ("tflops_bf16", "tflops_fp8", "tflops_fp4", "sram_mb", "hbm_gen", "hbm_stacks",
               "hbm_gb", "hbm_tbps", "scaleup_gbps", "scaleup_domain", "scaleout_gbps",
               "die_area_mm2", "tdp_w", "price_usd")


BASELINE_MEANING = "as projected into the search space"
"""What ``<objective>_vs_<chip>`` and every "vs CHIP" compare against (see the module text)."""

PROJECTED_FIELDS = ("process_nm", "n_compute_dies", "die_area_mm2", "compute_units",
                    "clock_ghz", "tflops_bf16", "tflops_fp8", "tflops_fp4", "sram_mb",
                    "hbm_gen", "hbm_stacks", "hbm_gb", "hbm_tbps", "scaleup_gbps",
                    "scaleup_links", "scaleup_domain", "scaleout_gbps", "tdp_w")
"""Chip fields a projection may change (plus the buyer's price, ``chip_cost_usd``)."""


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return not math.isclose(float(a), float(b), rel_tol=5e-3, abs_tol=1e-9)
    return a != b


def projection_changes(chip: ChipSpec, projected: ChipSpec,
                       prices: Any = None) -> dict[str, list[Any]]:
    """``{field: [catalog value, projected value]}`` for every chip field the projection
    changes by more than 0.5 % (an unknown catalog value shows as None), and
    ``chip_cost_usd``: the catalog price against the design's modelled price (USD)."""
    out: dict[str, list[Any]] = {}
    for k in PROJECTED_FIELDS:
        a, b = getattr(chip, k), getattr(projected, k)
        if _differs(a, b):
            out[k] = [a, b]
    kw = {} if prices is None else {"prices": prices}
    a, b = chip_price_usd(chip, **kw), chip_price_usd(projected, **kw)
    if _differs(a, b):
        out["chip_cost_usd"] = [None if math.isnan(a) else a, None if math.isnan(b) else b]
    return out


def format_changes(changes: dict[str, list[Any]]) -> str:
    """``"hbm_gen HBM2e->HBM3, n_compute_dies 1->2"`` ("nothing" when empty)."""
    def f(v: Any) -> str:
        if v is None:
            return "unknown"
        if isinstance(v, float):
            return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return str(v)
    return ", ".join(f"{k} {f(a)}->{f(b)}" for k, (a, b) in changes.items()) or "nothing"


def baseline_label(chip_id: str, changes: dict[str, list[Any]] | None) -> str:
    """How a command names the reference: ``"maia100 as projected into the search space:
    hbm_gen HBM2e->HBM3, ..."``, or ``"maia100 (catalog; cannot be projected)"``."""
    if changes is None:
        return f"{chip_id} (catalog; cannot be projected into the search space)"
    return f"{chip_id} {BASELINE_MEANING}: {format_changes(changes)}"


def projected_design(exp: Experiment, chip_id: str
                     ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(params, design)`` of catalog chip ``chip_id`` (or spec-sheet chip TOML,
    :func:`codesign.search.chip_file.resolve_chip`) projected into ``exp``'s search space
    (searched parameters, every design parameter), None when it cannot be projected (no
    compute units or bf16 peak); nothing is evaluated."""
    try:
        params = reference_params(exp.space, exp.chip_ref(chip_id))
    except ValueError:
        return None
    return params, design_from_params(base_design(exp), params)


def projection(exp: Experiment, chip_id: str,
               study: optuna.Study | None = None) -> dict[str, Any] | None:
    """Catalog chip ``chip_id`` as projected into ``exp``'s search space, the point the
    search evaluates as its baseline: ``params`` (searched parameters), ``design`` (every
    design parameter), ``chip`` (:class:`ChipSpec`), ``changes``
    (:func:`projection_changes`), ``metrics`` (the baseline trial's stored metrics when
    ``study`` has one for this chip, else evaluated now on the search's own path) and
    ``trial`` (its number, or None). None when the chip cannot be projected (no compute
    units or bf16 peak)."""
    from codesign.results.sensitivity import evaluate_params

    chip = resolve_chip(exp.chip_ref(chip_id))
    pd_ = projected_design(exp, chip_id)
    if pd_ is None:
        return None
    params, design = pd_
    projected = design_to_chip(design)
    trial = None
    if study is not None:
        done = [t for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get(BASELINE_ATTR) == chip_id and METRICS_ATTR in t.user_attrs]
        trial = done[-1] if done else None
    metrics = (dict(trial.user_attrs[METRICS_ATTR]) if trial is not None
               else evaluate_params(exp, [params])[0])
    return {"params": params, "design": design, "chip": projected,
            "changes": projection_changes(chip, projected, exp.prices),
            "metrics": metrics, "trial": None if trial is None else trial.number}


def baseline_metrics(exp: Experiment, chip_id: str) -> dict[str, Any]:
    """A catalog chip (or spec-sheet chip TOML) evaluated on the experiment's workload and
    cluster (same chip count)."""
    chip = resolve_chip(exp.chip_ref(chip_id))
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
    """For each objective, the best feasible front design next to catalog chip ``against``
    **as projected into the search space** (:func:`projection`; the catalog chip itself
    only when it cannot be projected): specs, metrics, improvement factors (> 1 = better)
    and the design parameters that differ from that projected point. ``baseline`` carries
    ``meaning`` ("projected" or "catalog"), ``label`` (what commands print) and
    ``projection_changes``; ``baseline.catalog`` holds the catalog chip evaluated as
    published, for reference. ``study``: the run's study if already open (loaded from the
    run's storage otherwise); ``front``: its :func:`codesign.search.front.front_trials` if already
    computed (comparing with several chips)."""
    exp, run = load_run(run_dir)
    ref_chip = resolve_chip(exp.chip_ref(against), "--against")
    if study is None:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    proj = projection(exp, against, study)
    try:
        cat = baseline_metrics(exp, against)
    except UnknownSpecError as exc:  # the catalog lacks a number; the projection has them
        if proj is None:
            raise
        cat = {"feasible": False, "reason": f"not evaluated: {exc}"}
    if proj is not None:
        ref, ref_spec, ref_design = proj["metrics"], proj["chip"], proj["design"]
    else:
        ref, ref_spec, ref_design = cat, ref_chip, {}
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
            # none against a reference the model cannot map (as `pareto` reports it)
            "improvement": {o.metric: _improvement(o.metric, o.direction,
                                                   metrics.get(o.metric), ref.get(o.metric))
                            if ref.get("feasible") else None
                            for o in exp.objectives},
            "changed": {k: [ref_design.get(k), design[k]] for k in design
                        if k not in CLUSTER_PARAMETERS and k in ref_design
                        and ref_design[k] != design[k]},
        })
    keys = list(best[0]["metrics"]) if best else list(ref)
    changes = proj["changes"] if proj is not None else None
    return {
        "study": run.study_name,
        "baseline": {"id": against, "spec": {k: getattr(ref_spec, k) for k in SPEC_FIELDS},
                     "metrics": {k: ref.get(k) for k in keys},
                     "feasible": bool(ref.get("feasible")), "reason": ref.get("reason", ""),
                     "design_projection": ref_design,
                     "meaning": "projected" if proj is not None else "catalog",
                     "label": baseline_label(against, changes),
                     "projection_changes": changes or {},
                     "trial": proj["trial"] if proj is not None else None,
                     "catalog": {"spec": {k: getattr(ref_chip, k) for k in SPEC_FIELDS},
                                 "metrics": {k: cat.get(k) for k in keys},
                                 "feasible": cat["feasible"], "reason": cat["reason"]}},
        "best": best,
    }
