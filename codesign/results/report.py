"""One self-contained HTML report of a run (``codesign report RUN_DIR [-o FILE]``).

Plotly draws every plot; its JavaScript is inlined once, so the file opens offline (no CDN,
no network). The data come from :mod:`codesign.results.inspect` (trials, front, hypervolume,
infeasibility reasons, sensitivity re-evaluated with the model) and :mod:`codesign.results.compare`
(reference chips on the same workload).

Sections, each with a stable element id (the browser test checks them):

* ``plot-front2d``: the Pareto front over each pair of objectives, every feasible trial in
  grey, the front in colour, reference chips as labelled stars;
* ``plot-front3d``: the same in 3-D when the run has three or more objectives;
* ``plot-parcoords``: parallel coordinates of the design parameters of feasible trials,
  coloured by the first objective;
* ``plot-hypervolume``: hypervolume of the feasible front after each trial;
* ``plot-infeasible``: why trials were infeasible, counts by reason (numbers in the model's
  text replaced by ``#``, so "HBM stacks exceed die edge: 9 > 8" and "...: 5 > 4" count
  together);
* ``plot-sensitivity``: one parameter at a time around a design, re-evaluated by the model
  (``--design TRIAL``, or the best design of each objective with a picker:
  ``plot-sensitivity-<trial>`` for the others), with its table;
* ``table-front``: the front designs with their parameters and mappings;
* ``table-compare``: the best design per objective next to each reference chip.

A run with no feasible trial gets the infeasibility section (and ``--design``'s sensitivity)
only, with a note saying so.

Example:
    >>> from codesign.results.report import write_report
    >>> path = write_report("runs/quickstart")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.model.metrics import METRICS
from codesign.model.pack import UnknownSpecError

PLOT_IDS = ("plot-front2d", "plot-front3d", "plot-parcoords", "plot-hypervolume",
            "plot-infeasible", "plot-sensitivity", "plot-breakdown")
"""Ids of the plot elements (``plot-front3d`` only with three or more objectives)."""

_CONFIG = {"displaylogo": False, "responsive": True}
WEBGL_ABOVE = 2000
"""Feasible trials above which the 2-D clouds are drawn with WebGL (``Scattergl``)."""
_GREY = "rgba(150,150,150,0.35)"
SENSITIVITY_AXIS = "← worse · change vs the chosen design (%) · better →"
"""The sensitivity chart's x axis: bars are signed so that right is better."""
HYPERVOLUME_AXIS = "hypervolume (0-1, share of box)"
"""The hypervolume chart's y axis: the fraction of the reference box dominated (0 to 1)."""
REFERENCE_NAME = "reference chips (as projected into the search space)"


def _label(metric: str) -> str:
    unit = METRICS.get(metric, ("", ""))[0]
    return f"{metric} ({unit})" if unit else metric


def _div(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=_CONFIG)


def _compare(run: Any, chips: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`codesign.results.compare.compare_run` for each reference chip (each chip evaluated
    once:
    its metrics mark the plots and fill the tables), and a note for each chip that cannot be
    evaluated (unknown catalog values) or is infeasible on the run's workload."""
    from codesign.results.compare import compare_run
    from codesign.search.front import front_trials

    front = front_trials(run.study)  # once for every chip
    docs, notes = [], []
    for chip_id in chips:
        try:
            doc = compare_run(run.path, chip_id, run.study, front)
        except UnknownSpecError as exc:  # an unknown catalog value: say so, show the rest
            notes.append(f"{chip_id}: not evaluated ({exc})")
            continue
        if not doc["baseline"]["feasible"]:
            notes.append(f"{chip_id}: infeasible on this workload ({doc['baseline']['reason']})")
        docs.append(doc)
    return docs, notes


def _reference_points(run: Any, docs: list[dict[str, Any]]) -> pd.DataFrame:
    """The objective values of each feasible reference chip (as projected into the search
    space, :data:`codesign.results.compare.BASELINE_MEANING`), one row per chip."""
    objs = [o for o, _ in run.objectives]
    return pd.DataFrame([{"chip": d["baseline"]["id"]}
                         | {o: _number(d["baseline"]["metrics"].get(o)) for o in objs}
                         for d in docs if d["baseline"]["feasible"]], columns=["chip", *objs])


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _drawable(refs: pd.DataFrame, axes: tuple[str, ...]) -> pd.DataFrame:
    """The reference chips with a finite value on every one of ``axes``: a plot draws (and
    its legend lists) only these."""
    if refs.empty:
        return refs
    ok = np.all([np.isfinite(refs[a].to_numpy(dtype=float)) for a in axes], axis=0)
    return refs[ok]


def _undrawn_notes(run: Any, refs: pd.DataFrame) -> list[str]:
    """A note for each feasible reference chip some objective of which is unknown (no
    price, say), naming what it lacks: the plots over that objective leave it out."""
    notes = []
    for _, r in refs.iterrows():
        missing = [o for o, _ in run.objectives if not math.isfinite(r[o])]
        if missing:
            notes.append(f"{r['chip']}: not drawn on plots over {', '.join(missing)} "
                         "(no value for it)")
    return notes


def _front_2d(run: Any, feasible: pd.DataFrame, front: pd.DataFrame,
              refs: pd.DataFrame) -> Any:
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
            marker={"color": "#1f77b4", "size": 9, "line": {"width": 1, "color": "white"}},
            legendgroup="front", showlegend=first,
            text=[f"trial {t}" for t in f["trial"]]), row=1, col=i)
        shown = _drawable(refs, (x, y))
        if len(shown):  # only chips it can draw; the legend lists the group once
            fig.add_trace(cloud(
                x=shown[x], y=shown[y], mode="markers+text", name=REFERENCE_NAME,
                text=shown["chip"], textposition="top center",
                marker={"symbol": "star", "size": 15, "color": "#d62728"},
                legendgroup="refs", showlegend=not refs_listed), row=1, col=i)
            refs_listed = True
        fig.update_xaxes(title_text=_label(x), row=1, col=i)
        fig.update_yaxes(title_text=_label(y), row=1, col=i)
    fig.update_layout(height=430, margin={"t": 30, "l": 60, "r": 20, "b": 60},
                      legend={"orientation": "h", "y": 1.12})
    return fig


def _front_3d(run: Any, feasible: pd.DataFrame, front: pd.DataFrame,
              refs: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    x, y, z = (o for o, _ in run.objectives[:3])
    fig = go.Figure()
    fig.add_trace(go.Scatter3d(x=feasible[x], y=feasible[y], z=feasible[z], mode="markers",
                               name="feasible trials",
                               marker={"size": 2, "color": "rgba(110,110,110,0.6)"}))
    fig.add_trace(go.Scatter3d(x=front[x], y=front[y], z=front[z], mode="markers",
                               name="Pareto front", marker={"size": 5, "color": "#1f77b4"},
                               text=[f"trial {t}" for t in front["trial"]]))
    shown = _drawable(refs, (x, y, z))
    if len(shown):
        fig.add_trace(go.Scatter3d(x=shown[x], y=shown[y], z=shown[z], mode="markers+text",
                                   text=shown["chip"], name=REFERENCE_NAME,
                                   marker={"size": 7, "color": "#d62728", "symbol": "diamond"}))
    fig.update_layout(height=560, margin={"t": 10, "l": 0, "r": 0, "b": 0},
                      scene={"xaxis_title": x, "yaxis_title": y, "zaxis_title": z})
    return fig


def _parcoords(run: Any, feasible: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    dims = []
    for p in run.experiment.space.params:
        col = feasible[f"param_{p.name}"]
        if p.kind == "categorical" or not pd.api.types.is_numeric_dtype(col):
            choices = list(p.choices or sorted(col.dropna().unique(), key=str))
            codes = col.map({c: i for i, c in enumerate(choices)})
            dims.append({"label": p.name, "values": codes, "tickvals": list(range(len(choices))),
                         "ticktext": [str(c) for c in choices]})
        else:
            dims.append({"label": p.name, "values": col.astype(float)})
    first = run.objectives[0][0]
    dims.append({"label": first, "values": feasible[first].astype(float)})
    fig = go.Figure(go.Parcoords(
        line={"color": feasible[first].astype(float), "colorscale": "Viridis",
              "showscale": True, "colorbar": {"title": {"text": first}}},
        dimensions=dims))
    fig.update_layout(height=420, margin={"t": 50, "l": 60, "r": 60, "b": 30})
    return fig


def _hypervolume(hv: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=hv["n_complete"], y=hv["hypervolume"], mode="lines+markers",
                               name="hypervolume", marker={"size": 4}))
    fig.update_layout(height=320, margin={"t": 20, "l": 60, "r": 20, "b": 50},
                      xaxis_title="trials completed",
                      yaxis_title=HYPERVOLUME_AXIS)
    return fig


def _infeasible(reasons: pd.DataFrame, n_trials: int) -> Any:
    import plotly.graph_objects as go

    if len(reasons):
        labels = [r if len(r) <= 90 else r[:87] + "..." for r in reasons["category"]]
        counts = reasons["count"]
    else:
        labels, counts = ["(no infeasible trial)"], [0]
    fig = go.Figure(go.Bar(x=counts, y=labels, orientation="h", marker={"color": "#ff7f0e"},
                           text=[str(c) for c in counts], textposition="auto"))
    fig.update_layout(height=max(220, 40 * len(labels) + 80),
                      margin={"t": 20, "l": 20, "r": 20, "b": 50},
                      xaxis_title=f"trials (of {n_trials})", yaxis={"automargin": True})
    return fig


def _sensitivity(sens: pd.DataFrame, metrics: list[str]) -> Any:
    """Bars of the change (%) of each of ``metrics`` for every variant the model can build
    and map, signed so that right (> 0) is better and left (< 0) worse whatever the metric's
    direction (``better_<metric>``; each legend entry says which way the metric itself is
    better); a variant that breaks a ``[constraints]`` bound says which."""
    import plotly.graph_objects as go

    fig = go.Figure()
    ok = sens[sens["feasible"].astype(bool)] if len(sens) else sens
    labels = [f"{p}: {_fmt(a)} → {_fmt(b)}" + (f" [breaks {v}]" if v else "")
              for p, a, b, v in zip(ok["param"], ok["from"], ok["to"], ok["violated"],
                                    strict=True)]
    directions = sens.attrs.get("directions", {})
    for metric in metrics:
        col = f"better_{metric}"
        if col in ok.columns:
            way = "higher" if directions.get(metric) == "maximize" else "lower"
            fig.add_trace(go.Bar(y=labels, x=100.0 * ok[col].astype(float),
                                 name=f"{metric} ({way} is better)", orientation="h"))
    fig.add_vline(x=0, line_width=1, line_color="#444")
    fig.update_layout(barmode="group", height=max(320, 22 * len(labels) * 2 + 120),
                      margin={"t": 20, "l": 20, "r": 20, "b": 50},
                      xaxis_title=SENSITIVITY_AXIS,
                      yaxis={"automargin": True, "autorange": "reversed"},
                      legend={"orientation": "h", "y": 1.05})
    return fig


def _fmt(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return ""
        return f"{v:.4g}"
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _table(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _front_table(run: Any, front: pd.DataFrame) -> pd.DataFrame:
    objs = [o for o, _ in run.objectives]
    params = [f"param_{p.name}" for p in run.experiment.space.params]
    maps = [c for c in front.columns if c.startswith("map_")]
    extra = [c for c in ("n_chips", "tdp_w", "chip_power_w", "die_area_mm2", "chip_cost_usd")
             if c in front.columns and c not in objs]
    vs = [c for c in front.columns if "_vs_" in c]
    cols = ["trial", *objs, *params, *extra, *maps, *vs]
    out = front[[c for c in dict.fromkeys(cols) if c in front.columns]].copy()
    out.columns = [c.removeprefix("param_") for c in out.columns]
    return out


def _compare_tables(docs: list[dict[str, Any]]) -> str:
    """The best design per objective next to each reference chip, every spec and metric."""
    parts = []
    for doc in docs:
        ref = doc["baseline"]
        chip_id = ref["id"]
        rows = []
        for k in dict.fromkeys([*ref["spec"], *ref["metrics"]]):
            row = {"": k, chip_id: ref["spec"].get(k, ref["metrics"].get(k))}
            for b in doc["best"]:
                v = b["spec"].get(k, b["metrics"].get(k))
                imp = b["improvement"].get(k)
                row[f"best {b['objective']} (trial {b['trial']})"] = (
                    f"{_fmt(v)} ({imp:.2f}x)" if imp else _fmt(v))
            rows.append(row)
        parts.append(f"<h3>vs {html.escape(chip_id)}</h3>"
                     f'<p class="meta">vs {html.escape(ref["label"])}</p>'
                     + _table(pd.DataFrame(rows), f"table-compare-{chip_id}"))
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:0 24px 48px;color:#222}
h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.note{color:#8a5300;font-size:0.9em}
.scroll{overflow-x:auto;max-height:520px;overflow-y:auto}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:3px 6px;
text-align:right;white-space:nowrap}th{background:#f3f3f3;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
"""


def _sensitivity_block(run: Any, designs: list[int], shown: list[str]) -> str:
    """One sensitivity chart and table per design, with a picker when there are several (the
    first is shown; its chart has the id ``plot-sensitivity``)."""
    from codesign.results.inspect import sensitivity

    best_of = {}
    for o, _ in run.objectives:
        try:
            best_of.setdefault(int(run.best(o)["trial"]), o)
        except ValueError:
            pass
    blocks, options = [], []
    for i, trial in enumerate(designs):
        sens = sensitivity(run, trial)
        div_id = "plot-sensitivity" if i == 0 else f"plot-sensitivity-{trial}"
        cols = [c for c in sens.columns if not c.startswith(("rel_", "better_"))]
        label = f"trial {trial}" + (f" (best {best_of[trial]})" if trial in best_of else "")
        options.append(f'<option value="{i}">{html.escape(label)}</option>')
        hidden = "" if i == 0 else ' style="display:none"'
        blocks.append(f'<div class="sens" data-i="{i}"{hidden}><p class="meta">around '
                      f"{html.escape(label)}: each parameter moved one step, re-evaluated by "
                      f"the model</p>{_div(_sensitivity(sens, shown), div_id)}"
                      + _table(sens[cols], f"table-sensitivity-{trial}") + "</div>")
    picker = ""
    if len(designs) > 1:
        picker = ('<p>design: <select id="sens-pick" onchange="pickSens(this.value)">'
                  + "".join(options) + "</select></p><script>function pickSens(v){"
                  "document.querySelectorAll('.sens').forEach(function(d){"
                  "var on=d.dataset.i===v;d.style.display=on?'':'none';"
                  "if(on){d.querySelectorAll('.js-plotly-plot').forEach(function(p){"
                  "Plotly.Plots.resize(p);});}});}</script>")
    return picker + "".join(blocks)


def build_report(run_dir: str | os.PathLike[str], design: int | None = None,
                 against: list[str] | None = None) -> str:
    """The report of ``run_dir`` as one HTML string (Plotly inlined).

    ``design``: trial number for the sensitivity chart (default: the best feasible trial for
    each objective, with a picker); ``against``: reference chip ids (default: the
    experiment's baselines, else ``h100-sxm``). A run with no feasible trial still gets a
    report: why its trials failed (and the sensitivity of ``design``, if given, to see which
    knob makes it feasible)."""
    import plotly.offline
    from optuna.trial import TrialState

    from codesign.results.inspect import (
        REPORTED_METRICS,
        hypervolume_history,
        infeasible_reasons,
        load_run,
    )

    run = load_run(run_dir)
    exp = run.experiment
    chips = list(against or exp.baselines or ("h100-sxm",))
    for c in chips:
        if c not in catalog.chip_ids():
            raise ConfigError(None, "--against", f"one of: {', '.join(catalog.chip_ids())}", c)
    trials = run.trials
    if trials.empty:
        stored = len(run.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        hint = (f"none in the Parquet log but {stored} in the study: rebuild the log with "
                f"`codesign export {run_dir}`" if stored else "none (run a search first)")
        raise ConfigError(str(run_dir), "trials", "at least one finished trial to report", hint)
    if design is not None and design not in set(trials["trial"]):
        raise ConfigError(None, "--design", "a trial number of the run", str(design))
    feasible = run.feasible  # every metric, the objectives included, is a column by name
    front = run.pareto
    designs = ([design] if design is not None else
               list(dict.fromkeys(int(run.best(o)["trial"]) for o, _ in run.objectives))
               if len(feasible) else [])
    notes: list[str] = []
    sections: list[tuple[str, str]] = []
    docs: list[dict[str, Any]] = []
    if len(feasible):
        docs, notes = _compare(run, chips)
        refs = _reference_points(run, docs)
        notes += _undrawn_notes(run, refs)
        notes += [f"vs {d['baseline']['label']}" for d in docs]
        sections.append(("Pareto front", _div(_front_2d(run, feasible, front, refs),
                                              "plot-front2d")))
        if len(run.objectives) >= 3:
            sections.append(("Pareto front in 3-D",
                             _div(_front_3d(run, feasible, front, refs), "plot-front3d")))
        sections += [
            ("Design parameters (feasible trials)",
             _div(_parcoords(run, feasible), "plot-parcoords")),
            ("Hypervolume over trials",
             _div(_hypervolume(hypervolume_history(run)), "plot-hypervolume")),
        ]
    else:
        notes.append(f"none of the {len(trials)} trials is feasible: no front to draw. The "
                     "reasons are below; `codesign report RUN --design TRIAL` shows which "
                     "knob makes a trial feasible.")
    sections.append(("Why trials were infeasible",
                     _div(_infeasible(infeasible_reasons(run, by="category"), len(trials)),
                          "plot-infeasible")))
    if designs:
        shown = list(dict.fromkeys([o for o, _ in run.objectives] + list(REPORTED_METRICS)))
        sections.append(("Sensitivity: what each design knob buys",
                         _sensitivity_block(run, designs, shown)))
    if len(feasible):
        if docs:
            from codesign.results import breakdown

            sections.append(("Where the cluster's watts and dollars go",
                             _div(breakdown.figure(docs), "plot-breakdown")))
        sections.append(("Front designs", _table(_front_table(run, front), "table-front")))
        sections.append(("Compared with reference chips",
                         f'<div id="table-compare">{_compare_tables(docs)}</div>'))
    objs = ", ".join(f"{d} {o}" for o, d in run.objectives)
    body = [f"<h1>{html.escape(run.study.study_name)}</h1>",
            f'<p class="meta">{html.escape(exp.description)}<br>objectives: {objs} · '
            f"{len(trials)} trials, {len(feasible)} feasible, {len(front)} on the front · "
            f"reference chips: {html.escape(', '.join(chips))}</p>"]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    body += [f"<h2>{html.escape(title)}</h2>{part}" for title, part in sections]
    js = plotly.offline.get_plotlyjs()
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>codesign report: {html.escape(run.study.study_name)}</title>"
            f"<style>{_CSS}</style><script>{js}</script></head><body>"
            + "\n".join(body) + "</body></html>")


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 design: int | None = None, against: list[str] | None = None) -> Path:
    """Write :func:`build_report` to ``out`` (default ``RUN_DIR/report.html``; a directory
    gets ``report.html`` inside it) atomically; returns the path. An ``out`` whose directory
    does not exist is a ConfigError, checked before any work."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    if path.is_dir():
        path = path / "report.html"
    if not path.parent.is_dir():
        raise ConfigError(None, "-o", "an HTML file in an existing directory", str(path))
    from codesign.search.storage.urls import writable_dir

    why = writable_dir(path.parent)
    if why is not None:
        raise ConfigError(None, "-o", "an HTML file in a writable directory", f"{path} ({why})")
    text = build_report(run_dir, design, against)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
