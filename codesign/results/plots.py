"""The report's Plotly figures (:mod:`codesign.results.report` lays them out), each with the run's
reference chips on it wherever a reference chip means something.

A reference chip ("baseline") is always the chip **as projected into the search space**
(:data:`codesign.results.compare.BASELINE_MEANING`): the experiment's ``baselines`` are
enqueued trials of the study (the Parquet log's ``is_baseline`` / ``baseline`` columns), and a
chip named only by ``--against`` is evaluated at the same projected point
(:func:`codesign.results.compare.compare_run`). :func:`baseline_rows` gathers them as trial-like
rows, so every plot reads the same numbers:

* :func:`front_2d` / :func:`front_3d`: labelled stars on the front (every pair of objectives,
  so a cost objective always has its plots);
* :func:`parcoords`: a first, categorical dimension ``design`` ("search" or the chip id), so
  each baseline's line can be picked out and brushed;
* :func:`hypervolume`: one dashed line, the hypervolume the feasible baselines dominate alone
  (:func:`baseline_hypervolume`, same reference point and normalisation as the curve);
* :func:`infeasible`: each infeasible baseline named in the bar of its reason, or "all
  baselines feasible";
* :func:`sensitivity`: a hatched row per baseline, its change vs the design on the same
  better/worse axis as the variants.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from codesign.model.metrics import METRICS

WEBGL_ABOVE = 2000
"""Feasible trials above which the 2-D clouds are drawn with WebGL (``Scattergl``)."""
_GREY = "rgba(150,150,150,0.35)"
_RED = "#d62728"
SENSITIVITY_AXIS = "← worse · change vs the chosen design (%) · better →"
"""The sensitivity chart's x axis: bars are signed so that right is better."""
HYPERVOLUME_AXIS = "hypervolume (0-1, share of box)"
"""The hypervolume chart's y axis: the fraction of the reference box dominated (0 to 1)."""
REFERENCE_NAME = "reference chips (as projected into the search space)"
BASELINES_HV_NAME = "baselines' hypervolume"
"""Name (start) of the hypervolume chart's dashed line: what the feasible baselines dominate."""
SEARCH_DESIGN = "search"
"""The parallel coordinates' ``design`` value of a trial the sampler proposed."""
BASELINE_TRACE = "baseline trials among them"
"""Name of the infeasibility chart's bars that name the infeasible baselines."""


def baseline_label(chip: str) -> str:
    """The sensitivity chart's row of a reference chip."""
    return f"baseline {chip} (as projected)"


def label(metric: str) -> str:
    """``"metric (unit)"`` (:data:`codesign.model.metrics.METRICS`)."""
    unit = METRICS.get(metric, ("", ""))[0]
    return f"{metric} ({unit})" if unit else metric


def fmt(v: Any) -> str:
    """A table cell or a bar label: 4 significant digits, '' for a missing number."""
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return ""
        return f"{v:.4g}"
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def number(v: Any) -> float:
    """``float(v)``, NaN for None or anything not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------- the baselines


def reference_points(run: Any, docs: list[dict[str, Any]]) -> pd.DataFrame:
    """The objective values of each feasible reference chip (as projected into the search
    space, :data:`codesign.results.compare.BASELINE_MEANING`), one row per chip."""
    objs = [o for o, _ in run.objectives]
    return pd.DataFrame([{"chip": d["baseline"]["id"]}
                         | {o: number(d["baseline"]["metrics"].get(o)) for o in objs}
                         for d in docs if d["baseline"]["feasible"]], columns=["chip", *objs])


def drawable(refs: pd.DataFrame, axes: tuple[str, ...]) -> pd.DataFrame:
    """The reference chips with a finite value on every one of ``axes``: a plot draws (and
    its legend lists) only these."""
    if refs.empty:
        return refs
    ok = np.all([np.isfinite(refs[a].to_numpy(dtype=float)) for a in axes], axis=0)
    return refs[ok]


def undrawn_notes(run: Any, refs: pd.DataFrame) -> list[str]:
    """A note for each feasible reference chip some objective of which is unknown (no
    price, say), naming what it lacks: the plots over that objective leave it out."""
    notes = []
    for _, r in refs.iterrows():
        missing = [o for o, _ in run.objectives if not math.isfinite(r[o])]
        if missing:
            notes.append(f"{r['chip']}: not drawn on plots over {', '.join(missing)} "
                         "(no value for it)")
    return notes


def _category(exp: Any, row: dict[str, Any]) -> str:
    """The infeasibility chart's bar a row falls in: :func:`infeasible_reasons` itself, on
    this one row."""
    from codesign.results.inspect import infeasible_reasons

    one = SimpleNamespace(trials=pd.DataFrame([row]), experiment=exp)
    cats = infeasible_reasons(one, by="category")["category"]
    return str(cats.iloc[0]) if len(cats) else ""


def baseline_rows(run: Any, chips: list[str], docs: list[dict[str, Any]]) -> pd.DataFrame:
    """One trial-like row per reference chip of ``chips`` (in that order): its baseline trial
    of the run's log when it has one (``trial`` set), else its compare document's projected
    point (``trial`` NaN; :func:`codesign.results.compare.compare_run`); a chip with neither
    (not evaluable) is left out. Columns: ``chip``, ``trial``, ``feasible`` (the model maps
    it), ``constraints_ok`` (and every ``[constraints]`` bound holds), ``reason``,
    ``category`` (its bar in the infeasibility chart, '' when ``constraints_ok``),
    ``param_<name>``, ``value_<objective>`` and every metric the row has, by name."""
    from codesign.results.sensitivity import violations

    exp = run.experiment
    trials = run.trials
    logged = trials[trials["is_baseline"].fillna(False).astype(bool)
                    & trials["baseline"].isin(chips)].drop_duplicates("baseline", keep="last")
    by_chip = {str(r["baseline"]): r.to_dict() for _, r in logged.iterrows()}
    docs_by = {d["baseline"]["id"]: d["baseline"] for d in docs}
    rows = []
    for chip in chips:
        if chip in by_chip:
            row = by_chip[chip]
        elif chip in docs_by:
            b = docs_by[chip]
            m = dict(b["metrics"])
            ok = bool(b["feasible"])
            row = {**m, "trial": math.nan, "is_baseline": False, "baseline": chip,
                   "feasible": ok, "reason": b.get("reason") or "",
                   "constraints_ok": ok and not violations(exp, m)}
            row |= {f"param_{p.name}": b.get("design_projection", {}).get(p.name)
                    for p in exp.space.params}
            row |= {f"value_{o}": number(m.get(o)) for o, _ in run.objectives}
        else:
            continue
        row["chip"] = chip
        row["category"] = "" if row["constraints_ok"] else _category(exp, row)
        rows.append(row)
    cols = ["chip", "trial", "feasible", "constraints_ok", "reason", "category"]
    df = pd.DataFrame(rows)
    return df[cols + [c for c in df.columns if c not in cols]] if rows else pd.DataFrame(
        columns=cols)


def unplotted_notes(base: pd.DataFrame) -> list[str]:
    """A note for each reference chip with no feasible trial (the parallel coordinates and
    the baselines' hypervolume leave it out), saying why."""
    return [f"{r['chip']}: no feasible trial ({r['category'] or r['reason']}), not drawn"
            for _, r in base.iterrows() if not bool(r["constraints_ok"])]


def baseline_hypervolume(points: pd.DataFrame, hv: pd.DataFrame) -> float:
    """The hypervolume dominated by ``points`` alone (rows with ``value_<objective>``
    columns; non-finite rows ignored), as a fraction of the reference box, normalised exactly
    as the curve ``hv`` (:func:`codesign.results.hypervolume.hypervolume_history`, whose
    ``attrs`` hold the bounds and the reference point): the curve's own loss, front and
    volume functions. NaN when ``hv`` has no bounds (no feasible trial); 0.0 for no point."""
    from codesign.results.hypervolume import _hypervolume, _loss_matrix, _nondominated

    objectives = hv.attrs.get("objectives") or []
    bounds = hv.attrs.get("bounds") or {}
    if not objectives or any(m not in bounds for m, _ in objectives):
        return math.nan
    loss = _loss_matrix(points, objectives)
    loss = loss[np.all(np.isfinite(loss), axis=1)]
    if len(loss) == 0:
        return 0.0
    # bounds are in the metric's unit (min, max); the curve's losses negate maximised ones
    lo = np.array([-bounds[m][1] if d == "maximize" else bounds[m][0] for m, d in objectives])
    hi = np.array([-bounds[m][0] if d == "maximize" else bounds[m][1] for m, d in objectives])
    span = np.where(hi > lo, hi - lo, 1.0)
    reference = float(hv.attrs["reference"])
    norm = np.clip((loss - lo) / span, 0.0, reference)
    k = len(objectives)
    return min(1.0, _hypervolume(_nondominated(norm), np.full(k, reference)) / reference ** k)


# ---------------------------------------------------------------------------- the figures


def _error_bars(front: pd.DataFrame, bands: dict[int, dict[str, list[float]]] | None,
                metric: str) -> dict[str, Any] | None:
    """Plotly error bars from each front design's P10..P90 of ``metric`` (None: no bands)."""
    if not bands:
        return None
    lo, hi = [], []
    for t, v in zip(front["trial"], front[metric], strict=True):
        b = bands.get(int(t), {}).get(metric)
        ok = b is not None and all(np.isfinite(b)) and np.isfinite(v)
        lo.append(max(0.0, v - min(b[0], b[2])) if ok else 0.0)
        hi.append(max(0.0, max(b[0], b[2]) - v) if ok else 0.0)
    if not any(lo) and not any(hi):
        return None
    return {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo,
            "thickness": 1, "width": 0, "color": "rgba(31,119,180,0.45)"}


def front_2d(run: Any, feasible: pd.DataFrame, front: pd.DataFrame, refs: pd.DataFrame,
             bands: dict[int, dict[str, list[float]]] | None = None) -> Any:
    """The front over every pair of objectives (a cost objective included), reference chips
    as labelled stars; ``bands`` ({trial: {objective: [P10, P50, P90]}}): each front design's
    P10-P90 as error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objs = [o for o, _ in run.objectives]
    pairs = list(itertools.combinations(objs, 2)) or [(objs[0], objs[0])]
    fig = make_subplots(rows=1, cols=len(pairs), horizontal_spacing=0.08)
    # thousands of trials: WebGL (SVG markers would slow the page down); every trace of the
    # plot in the same layer, so the front and the reference chips stay on top of the cloud
    cloud = go.Scattergl if len(feasible) > WEBGL_ABOVE else go.Scatter
    refs_listed = False
    for i, (x, y) in enumerate(pairs, start=1):
        first = i == 1
        fig.add_trace(cloud(
            x=feasible[x], y=feasible[y], mode="markers", name="feasible trials",
            marker={"color": _GREY, "size": 5}, legendgroup="all", showlegend=first,
            text=[f"trial {t}" for t in feasible["trial"]]), row=1, col=i)
        f = front.sort_values(x)
        fig.add_trace(cloud(
            x=f[x], y=f[y], mode="markers", name="Pareto front",
            error_x=_error_bars(f, bands, x), error_y=_error_bars(f, bands, y),
            marker={"color": "#1f77b4", "size": 9, "line": {"width": 1, "color": "white"}},
            legendgroup="front", showlegend=first,
            text=[f"trial {t}" for t in f["trial"]]), row=1, col=i)
        shown = drawable(refs, (x, y))
        if len(shown):  # only chips it can draw; the legend lists the group once
            fig.add_trace(cloud(
                x=shown[x], y=shown[y], mode="markers+text", name=REFERENCE_NAME,
                text=shown["chip"], textposition="top center",
                marker={"symbol": "star", "size": 15, "color": _RED},
                legendgroup="refs", showlegend=not refs_listed), row=1, col=i)
            refs_listed = True
        fig.update_xaxes(title_text=label(x), row=1, col=i)
        fig.update_yaxes(title_text=label(y), row=1, col=i)
    fig.update_layout(height=430, margin={"t": 30, "l": 60, "r": 20, "b": 60},
                      legend={"orientation": "h", "y": 1.12})
    return fig


def front_3d(run: Any, feasible: pd.DataFrame, front: pd.DataFrame, refs: pd.DataFrame) -> Any:
    """The first three objectives in 3-D, reference chips as labelled diamonds."""
    import plotly.graph_objects as go

    x, y, z = (o for o, _ in run.objectives[:3])
    fig = go.Figure()
    fig.add_trace(go.Scatter3d(x=feasible[x], y=feasible[y], z=feasible[z], mode="markers",
                               name="feasible trials",
                               marker={"size": 2, "color": "rgba(110,110,110,0.6)"}))
    fig.add_trace(go.Scatter3d(x=front[x], y=front[y], z=front[z], mode="markers",
                               name="Pareto front", marker={"size": 5, "color": "#1f77b4"},
                               text=[f"trial {t}" for t in front["trial"]]))
    shown = drawable(refs, (x, y, z))
    if len(shown):
        fig.add_trace(go.Scatter3d(x=shown[x], y=shown[y], z=shown[z], mode="markers+text",
                                   text=shown["chip"], name=REFERENCE_NAME,
                                   marker={"size": 7, "color": _RED, "symbol": "diamond"}))
    fig.update_layout(height=560, margin={"t": 10, "l": 0, "r": 0, "b": 0},
                      scene={"xaxis_title": x, "yaxis_title": y, "zaxis_title": z})
    return fig


def parcoords(run: Any, feasible: pd.DataFrame, base: pd.DataFrame | None = None) -> Any:
    """Parallel coordinates of the feasible trials' design parameters, coloured by the first
    objective. The first dimension, ``design``, is "search" or the chip id of a baseline
    trial (``base``'s feasible chips with no trial of the run are added as lines), so a
    baseline's line can be brushed on its own."""
    import plotly.graph_objects as go

    rows = feasible.copy()
    rows["design"] = [str(c) if bool(b) and isinstance(c, str) else SEARCH_DESIGN
                      for b, c in zip(rows["is_baseline"].fillna(False), rows["baseline"],
                                      strict=True)]
    if base is not None and len(base):
        extra = base[base["trial"].isna() & base["constraints_ok"].astype(bool)]
        rows = pd.concat([rows, extra.assign(design=extra["chip"])], ignore_index=True)
    chips = [c for c in dict.fromkeys(rows["design"]) if c != SEARCH_DESIGN]
    order = [SEARCH_DESIGN, *sorted(chips)]
    dims = [{"label": "design",
             "values": rows["design"].map({c: i for i, c in enumerate(order)}),
             "tickvals": list(range(len(order))), "ticktext": order}]
    for p in run.experiment.space.params:
        col = rows[f"param_{p.name}"]
        num = pd.to_numeric(col, errors="coerce") if p.kind != "categorical" else None
        if num is None or num.notna().sum() < col.notna().sum():
            choices = list(p.choices or sorted(col.dropna().unique(), key=str))
            codes = col.map({c: i for i, c in enumerate(choices)})
            dims.append({"label": p.name, "values": codes, "tickvals": list(range(len(choices))),
                         "ticktext": [str(c) for c in choices]})
        else:
            dims.append({"label": p.name, "values": num.astype(float)})
    first = run.objectives[0][0]
    dims.append({"label": first, "values": rows[first].astype(float)})
    fig = go.Figure(go.Parcoords(
        line={"color": rows[first].astype(float), "colorscale": "Viridis",
              "showscale": True, "colorbar": {"title": {"text": first}}},
        dimensions=dims))
    fig.update_layout(height=420, margin={"t": 50, "l": 60, "r": 60, "b": 30})
    return fig


def hypervolume(hv: pd.DataFrame, base: pd.DataFrame | None = None) -> Any:
    """The front's hypervolume after each trial and one dashed line: what the feasible
    baselines of ``base`` dominate alone (:func:`baseline_hypervolume`), with the trial
    count at which the search passes it."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=hv["n_complete"], y=hv["hypervolume"], mode="lines+markers",
                               name="hypervolume", marker={"size": 4}))
    ok = base[base["constraints_ok"].astype(bool)] if base is not None and len(base) else None
    if ok is not None and len(ok) and len(hv):
        value = baseline_hypervolume(ok, hv)
        chips = ", ".join(ok["chip"])
        passed = hv[hv["hypervolume"] > value + 1e-12]["n_complete"]
        when = (f"search passes it after {int(passed.iloc[0])} trials" if len(passed)
                else "search has not passed it")
        fig.add_trace(go.Scatter(
            x=[hv["n_complete"].min(), hv["n_complete"].max()], y=[value, value],
            mode="lines", name=f"{BASELINES_HV_NAME} ({chips})",
            line={"dash": "dash", "color": _RED, "width": 2},
            hovertemplate=f"{BASELINES_HV_NAME} ({chips}): %{{y:.4f}}<extra></extra>"))
        note = f"{BASELINES_HV_NAME} ({chips}): {value:.3f}; {when}"
    else:
        note = f"no feasible baseline: no {BASELINES_HV_NAME}"
    fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=1.0, showarrow=False,
                       xanchor="left", yanchor="bottom", font={"color": _RED})
    fig.update_layout(height=340, margin={"t": 40, "l": 60, "r": 20, "b": 50},
                      xaxis_title="trials completed", yaxis_title=HYPERVOLUME_AXIS,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _short(text: str) -> str:
    return text if len(text) <= 90 else text[:87] + "..."


def infeasible(reasons: pd.DataFrame, n_trials: int, base: pd.DataFrame | None = None) -> Any:
    """Counts of infeasible trials by reason (:func:`codesign.results.inspect
    .infeasible_reasons`, ``by="category"``); next to each reason's bar, a bar naming the
    baselines that fall in it (text and hover), and a line above saying which baselines are
    infeasible, or that all are feasible."""
    import plotly.graph_objects as go

    if len(reasons):
        labels = [_short(r) for r in reasons["category"]]
        counts = list(reasons["count"])
    else:
        labels, counts = ["(no infeasible trial)"], [0]
    fig = go.Figure(go.Bar(x=counts, y=labels, orientation="h", marker={"color": "#ff7f0e"},
                           text=[str(c) for c in counts], textposition="auto",
                           name="trials"))
    base = base if base is not None else pd.DataFrame(columns=["chip", "constraints_ok"])
    bad = base[~base["constraints_ok"].astype(bool)]
    if len(bad):
        groups = bad.groupby("category", sort=False)["chip"].agg(list)
        extra = [_short(c) for c in groups.index if _short(c) not in labels]
        labels += extra
        fig.add_trace(go.Bar(
            x=[len(v) for v in groups], y=[_short(c) for c in groups.index], orientation="h",
            name=BASELINE_TRACE, marker={"color": _RED, "pattern": {"shape": "/"}},
            text=[", ".join(v) for v in groups], textposition="outside", cliponaxis=False,
            hovertext=[f"baseline {', '.join(v)} (as projected): {c}"
                       for c, v in zip(groups.index, groups, strict=True)],
            hoverinfo="text"))
        good = list(base[base["constraints_ok"].astype(bool)]["chip"])
        note = (f"infeasible baselines: {', '.join(bad['chip'])} (in the bar of their reason)"
                + (f"; feasible: {', '.join(good)}" if good else ""))
    elif len(base):
        note = f"all baselines feasible ({', '.join(base['chip'])})"
    else:
        note = "no baseline evaluated"
    fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=1.0, showarrow=False,
                       xanchor="left", yanchor="bottom", font={"color": _RED})
    fig.update_layout(height=max(240, 40 * len(labels) * (1 + (len(bad) > 0)) + 100),
                      barmode="group", showlegend=len(bad) > 0,
                      margin={"t": 40, "l": 20, "r": 80, "b": 50},
                      xaxis_title=f"trials (of {n_trials})",
                      yaxis={"automargin": True, "autorange": "reversed"},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def baseline_changes(sens: pd.DataFrame, base: pd.DataFrame | None,
                     metrics: list[str]) -> pd.DataFrame:
    """Each model-feasible baseline of ``base`` as a sensitivity row: its change vs the design
    ``sens`` is around (``sens.attrs["design"]["metrics"]``), ``rel_<metric>`` and
    ``better_<metric>`` signed as :func:`codesign.results.sensitivity.sensitivity` signs its
    variants (> 0 better); ``label`` names the chip, and the bounds it breaks."""
    from codesign.results.sensitivity import _rel

    design = sens.attrs.get("design", {}).get("metrics", {})
    directions = sens.attrs.get("directions", {})
    rows = []
    if base is None or base.empty:
        base = pd.DataFrame(columns=["chip", "feasible", "constraints_ok", "category"])
    for _, r in base[base["feasible"].astype(bool)].iterrows():
        broken = "" if bool(r["constraints_ok"]) else f" [breaks {r['category']}]"
        row: dict[str, Any] = {"chip": r["chip"], "label": baseline_label(r["chip"]) + broken}
        for m in metrics:
            rel = _rel(r.get(m), design.get(m))
            row[f"rel_{m}"] = rel
            row[f"better_{m}"] = rel * (1.0 if directions.get(m) == "maximize" else -1.0)
        rows.append(row)
    return pd.DataFrame(rows, columns=["chip", "label", *[f"{p}_{m}" for p in ("rel", "better")
                                                           for m in metrics]])


def sensitivity(sens: pd.DataFrame, metrics: list[str], base: pd.DataFrame | None = None) -> Any:
    """Bars of the change (%) of each of ``metrics`` for every variant the model can build
    and map, signed so that right (> 0) is better and left (< 0) worse whatever the metric's
    direction (``better_<metric>``; each legend entry says which way the metric itself is
    better); a variant that breaks a ``[constraints]`` bound says which. With ``base``
    (:func:`baseline_rows`), the model-feasible baselines come first, one hatched row each
    (:func:`baseline_changes`): where each sits on the same axis."""
    import plotly.graph_objects as go

    fig = go.Figure()
    ok = sens[sens["feasible"].astype(bool)] if len(sens) else sens
    labels = [f"{p}: {fmt(a)} → {fmt(b)}" + (f" [breaks {v}]" if v else "")
              for p, a, b, v in zip(ok["param"], ok["from"], ok["to"], ok["violated"],
                                    strict=True)]
    refs = baseline_changes(sens, base, metrics)
    rows = list(refs["label"]) + labels
    hatch = ["/"] * len(refs) + [""] * len(labels)
    directions = sens.attrs.get("directions", {})
    for metric in metrics:
        col = f"better_{metric}"
        if col in ok.columns:
            way = "higher" if directions.get(metric) == "maximize" else "lower"
            x = [*(100.0 * refs[col].astype(float)), *(100.0 * ok[col].astype(float))]
            fig.add_trace(go.Bar(y=rows, x=x, name=f"{metric} ({way} is better)",
                                 orientation="h", marker={"pattern": {"shape": hatch}}))
    fig.add_vline(x=0, line_width=1, line_color="#444")
    if len(refs):  # a rule between the baselines and the variants
        fig.add_hline(y=len(refs) - 0.5, line_width=1, line_dash="dot", line_color=_RED)
    fig.update_layout(barmode="group", height=max(320, 22 * len(rows) * 2 + 120),
                      margin={"t": 20, "l": 20, "r": 20, "b": 50},
                      xaxis_title=SENSITIVITY_AXIS,
                      yaxis={"automargin": True, "autorange": "reversed"},
                      legend={"orientation": "h", "y": 1.05})
    return fig
