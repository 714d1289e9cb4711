"""``codesign recommend RUN``: the answer to a search, not only its table.

The feasible designs of the run's constraint-aware Pareto front, ranked by stated
preferences: each preference is a metric with a weight (default: the experiment's objectives,
weight 1 each), and a design's score is the weighted geometric mean of its improvement over a
reference on those metrics (> 1: better than the reference; improvement = design/reference
when the metric is maximised, reference/design when minimised). The reference is a chip as
projected into the search space (``--against``, else the experiment's first baseline; the
search's own baseline trial when it has one) or, with neither, the front's median design.

Each recommended design gets one line of reason: what it wins and by how much against the
reference, what it gives up, and what limits it (the largest part of its step time after
compute, throttling under its TDP, a full HBM, a constraint it sits on, parameters on a bound
of the search space). Parameters that sit on a bound in most of the front are flagged with
the suggestion to widen the space there.
"""

from __future__ import annotations

import math
import os
from typing import Any

from codesign.errors import ConfigError
from codesign.model.metrics import METRICS, STEP_PARTS
from codesign.search.toml_checks import _Plain

BOUND_SHARE = 0.5
"""A parameter is flagged for the whole front when at least this share of the front's
designs sit on one of its bounds."""
NEAR = 0.98
"""A design sits on a constraint when its value is within 2 % of the bound."""
TOP_DEFAULT = 3
"""Designs ``recommend`` lists unless told (``--top``)."""


def parse_preferences(specs: list[str] | None, exp: Any) -> list[tuple[str, str, float]]:
    """``metric[=weight]`` strings -> ``(metric, direction, weight)``; none: the experiment's
    objectives with weight 1. A metric the model does not define, a weight that is not a
    positive number: ConfigError naming ``--objective``."""
    if not specs:
        return [(o.metric, o.direction, 1.0) for o in exp.objectives]
    out = []
    for spec in specs:
        name, _, weight = spec.partition("=")
        name = name.strip()
        if name not in METRICS:
            from codesign.search.toml_checks import _suggest

            raise ConfigError(None, "--objective", "metric[=weight] with a metric of codesign "
                              "(codesign catalog lists them; e.g. tokens_per_joule=2)"
                              + _suggest(name, METRICS), spec)
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            w = float("nan")
        if not (math.isfinite(w) and w > 0):
            raise ConfigError(None, "--objective", "a weight > 0 after '=' (e.g. "
                              f"{name}=2)", spec)
        out.append((name, METRICS[name][1], w))
    return out


def _unit(metric: str) -> str:
    """The unit of a metric or of a percentile of one (``tokens_per_joule@p10``)."""
    from codesign.search.uncertainty import parse_percentile

    base = (parse_percentile(metric) or (metric,))[0]
    return METRICS.get(base, ("",))[0]


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def improvement(direction: str, design: Any, reference: Any) -> float | None:
    """> 1 = better: design/reference (maximise) or reference/design (minimise); None where
    either is missing or not positive."""
    d, r = _num(design), _num(reference)
    if d is None or r is None or d <= 0 or r <= 0:
        return None
    return d / r if direction == "maximize" else r / d


def reference_of(run: Any, against: str | None) -> dict[str, Any]:
    """The reference ``{"label", "metrics"}``: chip ``against`` (or the experiment's first
    baseline) as projected into the search space, from its baseline trial when the run has
    one (else evaluated now); None metrics with neither (the front's median is used)."""
    exp = run.experiment
    chip = against if against is not None else (exp.baselines[0] if exp.baselines else None)
    if not chip:  # none, or "" (asked for): the front's median
        return {"label": "the front's median design", "chip": None, "metrics": None}
    from codesign.search.chip_file import resolve_chip

    resolve_chip(exp.chip_ref(chip), "--against")  # an id, a spec-sheet or a design file
    df = run.trials
    rows = df[df["is_baseline"] & (df["baseline"] == chip)] if len(df) else df
    if chip in exp.baselines and len(rows):
        metrics = {k: v for k, v in rows.iloc[-1].items()}
    else:
        from codesign.results.compare import projection

        proj = projection(exp, chip)
        if proj is None:
            raise ConfigError(None, "--against", "a chip the search space can express (with "
                              "compute units and a bf16 peak)", chip)
        metrics = proj["metrics"]
    if not metrics.get("feasible"):
        raise ConfigError(None, "--against", "a reference the model can map onto the "
                          "experiment's workload", _Plain(f"{chip}: {metrics.get('reason')}"))
    name = os.path.basename(chip).removesuffix(".toml") if chip.endswith(".toml") else chip
    return {"label": f"{name} (projected)", "chip": chip, "metrics": metrics}


def bounds_of(exp: Any, params: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(parameter, "lower" | "upper", bound)`` for each searched number of ``params`` that
    sits on a bound of the search space (within half a step, or 0.5 % of the range)."""
    out = []
    for p in exp.space.params:
        v = _num(params.get(p.name))
        if p.kind == "categorical":
            choices = [c for c in (p.choices or ()) if _num(c) is not None]
            if len(choices) < 2 or v is None:
                continue
            low, high = min(choices, key=float), max(choices, key=float)
        else:
            low, high = p.low, p.high
        if v is None or low is None or high is None or float(high) <= float(low):
            continue
        tol = max(float(p.step or 0) / 2, 0.005 * (float(high) - float(low)))
        if v <= float(low) + tol:
            out.append((p.name, "lower", low))
        elif v >= float(high) - tol:
            out.append((p.name, "upper", high))
    return out


def _params(row: dict[str, Any], exp: Any) -> dict[str, Any]:
    return {p.name: row.get(f"param_{p.name}") for p in exp.space.params}


def _step_limits(run: Any, row: dict[str, Any]) -> list[str]:
    """The largest parts of the design's training step after compute (share of the step),
    from one evaluation of its best mapping; none for serving."""
    from codesign.model.perf import evaluate
    from codesign.model.specs import TrainJob
    from codesign.results.export_design import design_of
    from codesign.search.design import design_to_chip, design_to_cluster
    from codesign.search.space import cluster_extra

    exp = run.experiment
    if not isinstance(exp.job, TrainJob):
        return []
    design = design_of(run, row)
    res = evaluate(design_to_chip(design), design_to_cluster(design, cluster_extra(exp)),
                   exp.job)
    parts = {k: v for k, v in (getattr(res, "breakdown_s", None) or {}).items()
             if k not in ("compute", "attention_compute", "moe_compute") and v > 0}
    step = res.step_time_s if getattr(res, "step_time_s", 0) else 0.0
    if not parts or step <= 0:
        return []
    name, t = max(parts.items(), key=lambda kv: kv[1])
    label = {k: words for k, words, _ in STEP_PARTS}.get(name, name.replace("_", " "))
    return [f"{label} {t / step:.0%} of the step"] if t / step >= 0.05 else []


def limits_of(run: Any, row: dict[str, Any]) -> list[str]:
    """What holds a design back, in words: throttling, a full HBM, the constraints it sits
    on, the largest non-compute part of its step, the parameters on a bound of the space."""
    exp = run.experiment
    out = []
    clock = _num(row.get("clock_fraction"))
    if clock is not None and clock < 0.99:
        out.append(f"power: clock throttled to {clock:.0%} under its {row.get('tdp_w'):.0f} W "
                   "TDP")
    used, hbm = _num(row.get("memory_gb_per_chip")), _num(row.get("hbm_gb"))
    if used and hbm and used / hbm >= 0.9:
        out.append(f"HBM capacity: {used:.0f} of {hbm:.0f} GB used")
    for c in exp.constraints:
        v = _num(row.get(c.metric))
        unit = _unit(c.metric).split(" (")[0]
        if v is not None and c.max is not None and v >= NEAR * c.max:
            out.append(f"constraint {c.metric} <= {c.max:g} {unit}".rstrip())
        if v is not None and c.min is not None and c.min > 0 and v <= c.min / NEAR:
            out.append(f"constraint {c.metric} >= {c.min:g} {unit}".rstrip())
    out += _step_limits(run, row)
    out += [f"{name} at its {side} bound {b:g}"
            for name, side, b in bounds_of(exp, _params(row, exp))]
    return out


def _ratio(x: float) -> str:
    return f"x{x:.2f}"


def reason_line(gains: dict[str, float | None], reference: str, limits: list[str]) -> str:
    """One line: what the design wins over ``reference`` and by how much, what it gives up,
    what limits it."""
    wins = [f"{m} {_ratio(g)}" for m, g in gains.items() if g is not None and g > 1.005]
    loses = [f"{m} {_ratio(g)}" for m, g in gains.items() if g is not None and g < 0.995]
    parts = []
    if wins:
        parts.append(f"beats {reference} on " + ", ".join(wins))
    else:
        parts.append(f"no better than {reference} on any preference")
    if loses:
        parts.append("gives up " + ", ".join(loses))
    parts.append("limited by " + ("; ".join(limits) if limits else "nothing the model flags"))
    return "; ".join(parts)


def recommend(run_dir: str | os.PathLike[str], objectives: list[str] | None = None,
              top: int = TOP_DEFAULT, against: str | None = None) -> dict[str, Any]:
    """The best feasible front designs of the run in ``run_dir`` under the preferences
    ``objectives`` (``metric[=weight]``), at most ``top``, each with its score (weighted
    geometric mean improvement over the reference, > 1 = better), improvements, stored
    metrics and reason line; and the parameters on a bound in most of the front.

    Raises:
        ConfigError: a bad preference or reference; a run that is not one.
    """
    from codesign.results.inspect import load_run

    run = load_run(run_dir)
    exp = run.experiment
    prefs = parse_preferences(objectives, exp)
    front = run.pareto
    if len(front):
        front = front[front["feasible"] & front["constraints_ok"] & ~front["is_baseline"]]
    ref = reference_of(run, against)
    rows = [{k: v for k, v in r.items()} for _, r in front.iterrows()]
    ref_metrics = ref["metrics"]
    if ref_metrics is None and rows:
        import statistics

        ref_metrics = {}
        for m, _, _ in prefs:
            vals = [v for r in rows if (v := _num(r.get(m))) is not None]
            ref_metrics[m] = statistics.median(vals) if vals else None
    scored = []
    for r in rows:
        gains = {m: improvement(d, r.get(m), (ref_metrics or {}).get(m)) for m, d, _ in prefs}
        known = [(g, w) for (m, _, w), g in zip(prefs, gains.values(), strict=True)
                 if g is not None]
        total = sum(w for _, w in known)
        score = math.exp(sum(w * math.log(g) for g, w in known) / total) if known else None
        scored.append((score, r, gains))
    scored.sort(key=lambda s: (s[0] is None, -(s[0] or 0.0), int(s[1]["trial"])))
    picks = []
    for rank, (score, r, gains) in enumerate(scored[:max(0, top)], start=1):
        limits = limits_of(run, r)
        picks.append({
            "rank": rank, "trial": int(r["trial"]), "score": score,
            "improvement": gains,
            "metrics": {m: _num(r.get(m)) for m, _, _ in prefs},
            "params": _params(r, exp),
            "limits": limits,
            "reason": reason_line(gains, ref["label"], limits),
        })
    return {"study": run.name, "run_dir": str(run.path), "front_designs": len(rows),
            "reference": {"label": ref["label"], "chip": ref["chip"],
                          "metrics": {m: _num((ref_metrics or {}).get(m)) for m, _, _ in prefs}},
            "preferences": [{"metric": m, "direction": d, "weight": w,
                             "unit": _unit(m)} for m, d, w in prefs],
            "recommendations": picks,
            "bounds": front_bounds(exp, rows)}


def front_bounds(exp: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Searched parameters on one bound in at least :data:`BOUND_SHARE` of the front's
    designs: ``param``, ``side``, ``bound``, ``designs`` (how many), ``of`` and the
    ``suggestion`` (widen the search space there)."""
    counts: dict[tuple[str, str, Any], int] = {}
    for r in rows:
        for key in bounds_of(exp, _params(r, exp)):
            counts[key] = counts.get(key, 0) + 1
    out = []
    for (name, side, bound), n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if rows and n / len(rows) >= BOUND_SHARE:
            key = "high" if side == "upper" else "low"
            out.append({"param": name, "side": side, "bound": bound, "designs": n,
                        "of": len(rows),
                        "suggestion": f"widen {name} ({key} = {bound:g} in the search "
                                      f"space, {os.path.basename(exp.space.path)})"})
    return out


def headline(rec: dict[str, Any]) -> str:
    """The one-paragraph answer (``search`` ends with it): the top design and its reason,
    and the bound warnings."""
    if not rec["recommendations"]:
        return "recommended: none (no feasible design on the front yet)"
    best = rec["recommendations"][0]
    lines = [f"recommended: trial {best['trial']} (score {best['score']:.3g} vs "
             f"{rec['reference']['label']}): {best['reason']}"
             if best["score"] is not None else
             f"recommended: trial {best['trial']}: {best['reason']}"]
    for b in rec["bounds"]:
        lines.append(f"  note: {b['param']} sits on its {b['side']} bound {b['bound']:g} in "
                     f"{b['designs']} of {b['of']} front designs: {b['suggestion']}")
    return "\n".join(lines)


def search_headline(run_dir: str | os.PathLike[str]) -> str:
    """The headline ``codesign search`` ends with: the top design by the experiment's
    objectives against its first baseline (the front's median design where the baseline
    cannot be a reference), and the bounds the front presses against."""
    try:
        rec = recommend(run_dir, top=1)
    except ConfigError:  # a baseline the model cannot map: the front's median instead
        from codesign.results.inspect import load_run

        rec = recommend(run_dir, top=1, against=_NO_REFERENCE) if load_run(
            run_dir).experiment.baselines else recommend(run_dir, top=1)
    return headline(rec) + f"\nmore: codesign recommend {run_dir} --top 5"


_NO_REFERENCE = ""
"""``against`` that asks :func:`reference_of` for the front's median design."""
