"""One self-contained HTML report of a run (``codesign report RUN_DIR [-o FILE]``).

Plotly draws every plot; its JavaScript is inlined once, so the file opens offline (no CDN,
no network). The data come from :mod:`codesign.results.inspect` (trials, front, hypervolume,
infeasibility reasons, sensitivity re-evaluated with the model) and :mod:`codesign.results.compare`
(reference chips on the same workload).

Sections, each with a stable element id (the browser test checks them):

* ``plot-front2d``: the Pareto front over each pair of objectives (cost objectives
  included), every feasible trial in grey, the front in colour, reference chips as labelled
  stars;
* ``plot-front3d``: the same in 3-D when the run has three or more objectives;
* ``plot-parcoords``: parallel coordinates of the design parameters of feasible trials,
  coloured by the first objective; the first dimension, ``design``, is "search" or a
  reference chip's id (a note names a chip with no feasible trial);
* ``plot-hypervolume``: hypervolume of the feasible front after each trial, and a dashed
  line: the hypervolume the feasible reference chips dominate alone;
* ``plot-infeasible``: why trials were infeasible, counts by reason (numbers in the model's
  text replaced by ``#``, so "HBM stacks exceed die edge: 9 > 8" and "...: 5 > 4" count
  together), each infeasible reference chip named next to the bar of its reason ("all
  baselines feasible" otherwise);
* ``plot-sensitivity``: one parameter at a time around a design, re-evaluated by the model
  (``--design TRIAL``, or the best design of each objective with a picker:
  ``plot-sensitivity-<trial>`` for the others), with its table; a hatched row per reference
  chip: its change vs that design on the same axis;
* ``plot-breakdown``: where the cluster's watts and dollars go, reference chips next to the
  best designs (:mod:`codesign.results.breakdown`);
* ``table-front``: the front designs with their parameters and mappings;
* ``table-compare``: the best design per objective next to each reference chip.

The figures themselves are built in :mod:`codesign.results.plots`; :func:`build_figures`
returns them by element id.

A run with no feasible trial gets the infeasibility section (and ``--design``'s sensitivity)
only, with a note saying so.

Example:
    >>> from codesign.results.report import write_report
    >>> path = write_report("runs/quickstart")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from codesign.errors import ConfigError
from codesign.model.pack import UnknownSpecError
from codesign.results import plots
from codesign.results.plots import (  # the report's public names, defined with its figures
    HYPERVOLUME_AXIS,
    REFERENCE_NAME,
    SENSITIVITY_AXIS,
    WEBGL_ABOVE,
)

# the builders under their former names in this module (tests and notebooks use them)
_front_2d, _front_3d, _sensitivity = plots.front_2d, plots.front_3d, plots.sensitivity
_reference_points, _undrawn_notes, _fmt = plots.reference_points, plots.undrawn_notes, plots.fmt

__all__ = ["HYPERVOLUME_AXIS", "PLOT_IDS", "REFERENCE_NAME", "SENSITIVITY_AXIS", "WEBGL_ABOVE",
           "build_figures", "build_report", "write_report"]

PLOT_IDS = ("plot-front2d", "plot-front3d", "plot-parcoords", "plot-hypervolume",
            "plot-infeasible", "plot-sensitivity", "plot-breakdown", "plot-goodput")
"""Ids of the plot elements (``plot-front3d`` only with three or more objectives,
``plot-goodput`` only for a training workload with a reference chip)."""

_CONFIG = {"displaylogo": False, "responsive": True}



HV_POINTS = 100
"""Checkpoints of the report's hypervolume curve (at 100,000 trials the report went from
10.5 s to 9.5 s when this went from 200 to 100; the curve reads the same)."""

def _div(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=_CONFIG)


CLOUD_MAX = 20_000
"""Feasible trials the clouds (2-D and 3-D fronts, parallel coordinates) draw at most: above
it a random sample of them (seed 0), the front and the baseline trials always drawn whole and
a note saying so; every count, the hypervolume and the infeasibility chart use every trial.
Estimate: 20k points per plot keep the file near 10 MB and WebGL plots smooth."""


class _View:
    """The run as the report reads it, in memory bounded by the columns it draws: the trial
    log projected on them (``trials``), the feasible trials (``all_feasible``) and the cloud
    drawn of them (``feasible``, at most :data:`CLOUD_MAX` + the front and baselines), the
    front (:attr:`codesign.results.inspect.Run.pareto`, from the log when it is whole), and
    ``study``: what sensitivity reads of the chosen designs (:meth:`designs`)."""

    def __init__(self, run: Any) -> None:
        from codesign.results.inspect import REPORTED_METRICS
        from codesign.search import parquet_log

        self.run, self.experiment, self.path, self.name = run, run.experiment, run.path, run.name
        self.objectives = run.objectives
        exp = run.experiment
        sch = parquet_log.schema(exp)
        cols = ["trial", "is_baseline", "baseline", "feasible", "constraints_ok", "reason",
                *(f"param_{p.name}" for p in exp.space.params),
                *(f"value_{o}" for o, _ in run.objectives), *(o for o, _ in run.objectives),
                *(c.metric for c in exp.constraints), *REPORTED_METRICS]
        cols = [c for c in dict.fromkeys(cols) if c in sch.names]
        table = parquet_log.read_log(run.path, sch, columns=cols)
        df = (sch.empty_table().select(cols) if table is None else table).to_pandas()
        df = df.drop_duplicates("trial", keep="last").sort_values("trial", kind="stable")
        self.trials = df.reset_index(drop=True)
        self.all_feasible = self.trials[self.trials["constraints_ok"].astype(bool)]
        self.all_feasible = self.all_feasible.reset_index(drop=True)
        self.feasible = self.all_feasible
        self.sampled = False
        self.study: Any = None

    @property
    def pareto(self) -> pd.DataFrame:
        return self.run.pareto

    def sample(self) -> None:
        """Draw at most :data:`CLOUD_MAX` feasible trials in the clouds (plus the front's and
        the baselines')."""
        ok = self.all_feasible
        if len(ok) <= CLOUD_MAX:
            return
        import numpy as np

        keep = np.zeros(len(ok), bool)
        keep[np.random.default_rng(0).choice(len(ok), CLOUD_MAX, replace=False)] = True
        keep |= ok["trial"].isin(set(self.pareto["trial"])).to_numpy()
        keep |= ok["is_baseline"].fillna(False).astype(bool).to_numpy()
        self.feasible, self.sampled = ok[keep].reset_index(drop=True), True

    def best(self, objective: str) -> pd.Series:
        """:meth:`codesign.results.inspect.Run.best` over the projected columns."""
        directions = dict(self.objectives)
        if objective not in directions:
            raise ValueError(f"{objective!r} is not an objective of study {self.name!r}")
        ok = self.all_feasible
        if ok.empty:
            raise ValueError(f"study {self.name!r} has no feasible trial yet")
        col = ok[f"value_{objective}"]
        return ok.loc[col.idxmax() if directions[objective] == "maximize" else col.idxmin()]

    def designs(self, numbers: list[int]) -> None:
        """What sensitivity reads of trials ``numbers``: the study, or their log rows when the
        log stands in for it (no journal replay)."""
        if not self.run.log_view.usable:
            self.study = self.run.study
            return
        from codesign.search.storage.log_state import LogStudy

        self.study = LogStudy(self.name, self.experiment, self.path, numbers)


def _compare(run: Any, chips: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`codesign.results.compare.compare_run` for each reference chip (each chip evaluated
    once: its metrics mark the plots and fill the tables), and a note for each chip that
    cannot be evaluated (unknown catalog values) or is infeasible on the run's workload.
    ``run``: the :class:`codesign.results.inspect.Run` (its front and baseline trials from the
    log when the log is whole)."""
    from codesign.results.compare import compare_run

    front = run.front_trials()  # once for every chip
    docs, notes = [], []
    for chip_id in chips:
        try:
            doc = compare_run(run.path, chip_id, run.stored, front)
        except UnknownSpecError as exc:  # an unknown catalog value: say so, show the rest
            notes.append(f"{chip_id}: not evaluated ({exc})")
            continue
        if not doc["baseline"]["feasible"]:
            notes.append(f"{chip_id}: infeasible on this workload ({doc['baseline']['reason']})")
        docs.append(doc)
    return docs, notes


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


def _uncertainty_table(unc: dict[str, Any]) -> pd.DataFrame:
    """Per front design: each objective's P10-P90 and, per baseline, the probability it
    beats it (paired draws; >= 0.9 marked *)."""
    from codesign.results.uncertainty import WIN_SURE

    rows = []
    for d in unc["designs"]:
        row: dict[str, Any] = {"trial": d["trial"]}
        for o, (p10, _, p90) in d["bands"].items():
            row[f"{o} P10-P90"] = f"{p10:.4g} - {p90:.4g}"
        for cid, ps in d["p_beats"].items():
            for o, p in ps.items():
                row[f"P(beats {cid}) {o}"] = (f"{p:.2f}" + ("*" if p >= WIN_SURE else "")
                                              if p == p else "")
        rows.append(row)
    return pd.DataFrame(rows)


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


@dataclass
class _Report:
    """What :func:`build_report` lays out: notes, sections and every figure by element id."""

    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    """Each reference chip and why a plot may not draw it ('' when nothing stops it)."""

    def plot(self, fig: Any, div_id: str, notes: list[str] | tuple[str, ...] = ()) -> str:
        """The figure's div (and a note under it for each of ``notes``); recorded by id. A
        reference chip the figure does not draw is named in it, with the reason, so that
        every plot shows every baseline."""
        absent = [c for c in self.baselines if c not in fig.to_json()]
        if absent:
            fig.add_annotation(
                text="not drawn here: " + "; ".join(
                    f"{c} ({self.baselines[c] or 'no value on these axes'})"[:160]
                    for c in absent),
                xref="paper", yref="paper", x=1.0, y=1.0, xanchor="right", yanchor="bottom",
                showarrow=False, font={"size": 10, "color": "#8a5300"})
        self.figures[div_id] = fig
        return _div(fig, div_id) + "".join(f'<p class="note">{html.escape(n)}</p>'
                                           for n in notes)


def _sensitivity_block(run: Any, designs: list[int], shown: list[str], base: pd.DataFrame,
                       rep: _Report) -> str:
    """One sensitivity chart and table per design, with a picker when there are several (the
    first is shown; its chart has the id ``plot-sensitivity``); the reference chips of
    ``base`` (:func:`codesign.results.plots.baseline_rows`) as hatched rows on each."""
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
        unmapped = [f"{r['chip']}: the model finds no mapping ({r['reason']}), no row"
                    for _, r in base.iterrows() if not bool(r["feasible"])]
        chart = rep.plot(plots.sensitivity(sens, shown, base), div_id, unmapped)
        blocks.append(f'<div class="sens" data-i="{i}"{hidden}><p class="meta">around '
                      f"{html.escape(label)}: each parameter moved one step, re-evaluated by "
                      "the model; hatched rows: each reference chip as projected, vs this "
                      f"design</p>{chart}"
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


def _assemble(run: Any, chips: list[str], design: int | None) -> _Report:
    """Every section and figure of the report of ``run`` (checked by :func:`_open`)."""
    from codesign.results.inspect import (
        REPORTED_METRICS,
        hypervolume_history,
        infeasible_reasons,
    )

    rep = _Report()
    trials = run.trials
    run.sample()
    feasible = run.feasible  # every metric, the objectives included, is a column by name
    front = run.pareto
    designs = ([design] if design is not None else
               list(dict.fromkeys(int(run.best(o)["trial"]) for o, _ in run.objectives))
               if len(feasible) else [])
    run.designs(designs)
    docs: list[dict[str, Any]] = []
    if run.run.log_view.note:
        rep.notes.append(run.run.log_view.note)
    if len(feasible):
        docs, notes = _compare(run.run, chips)
        rep.notes += notes
        refs = plots.reference_points(run, docs)
        rep.notes += plots.undrawn_notes(run, refs)
        rep.notes += [f"vs {d['baseline']['label']}" for d in docs]
        if run.sampled:
            rep.notes.append(f"the clouds of feasible trials draw {len(feasible):,} of "
                             f"{len(run.all_feasible):,}: a random sample (seed 0), the front "
                             "and the baseline trials whole; counts, hypervolume and reasons "
                             "use every trial")
    base = plots.baseline_rows(run, chips, docs)  # no docs: the baseline trials of the log
    why = {str(r["chip"]): str(r["category"] or r["reason"] or "") for _, r in base.iterrows()}
    rep.baselines = {c: why.get(c, "not evaluated") for c in chips}
    unc = None
    if len(front):
        from codesign.results.uncertainty import report_bands

        unc, notes = report_bands(run.run.experiment, front, chips)
        rep.notes += notes
    bands = None if unc is None else {d["trial"]: d["bands"] for d in unc["designs"]}
    if len(feasible):
        rep.sections.append(("Pareto front", rep.plot(
            plots.front_2d(run, feasible, front, refs, bands), "plot-front2d")))
        if len(run.objectives) >= 3:
            rep.sections.append(("Pareto front in 3-D", rep.plot(
                plots.front_3d(run, feasible, front, refs), "plot-front3d")))
        missing = plots.unplotted_notes(base)
        rep.sections += [
            ("Design parameters (feasible trials)",
             rep.plot(plots.parcoords(run, feasible, base), "plot-parcoords", missing)),
            ("Hypervolume over trials",
             rep.plot(plots.hypervolume(hypervolume_history(run, HV_POINTS), base),
                      "plot-hypervolume", missing)),
        ]
    else:
        rep.notes.append(f"none of the {len(trials)} trials is feasible: no front to draw. "
                         "The reasons are below; `codesign report RUN --design TRIAL` shows "
                         "which knob makes a trial feasible.")
    rep.sections.append(("Why trials were infeasible", rep.plot(
        plots.infeasible(infeasible_reasons(run, by="category"), len(trials), base),
        "plot-infeasible")))
    if designs:
        shown = list(dict.fromkeys([o for o, _ in run.objectives] + list(REPORTED_METRICS)))
        rep.sections.append(("Sensitivity: what each design knob buys",
                             _sensitivity_block(run, designs, shown, base, rep)))
    if len(feasible):
        if docs:
            from codesign.results import breakdown

            rep.sections.append(("Where the cluster's watts and dollars go",
                                 rep.plot(breakdown.figure(docs), "plot-breakdown")))
        from codesign.model.specs import TrainJob

        if docs and isinstance(run.run.experiment.job, TrainJob):
            from codesign.results import goodput_view

            cols = goodput_view.columns(run.run.experiment, docs)
            if cols:
                rep.sections.append(("Failures, checkpoints and restarts (goodput)",
                                     rep.plot(goodput_view.figure(cols), "plot-goodput")))
        rep.sections.append(("Front designs", _table(_front_table(run, front), "table-front")))
        if unc is not None:
            rep.sections.append(("How sure: bands and win probabilities",
                                 _table(_uncertainty_table(unc), "table-uncertainty")))
        rep.sections.append(("Compared with reference chips",
                             f'<div id="table-compare">{_compare_tables(docs)}</div>'))
    return rep


def _open(run_dir: str | os.PathLike[str], design: int | None,
          against: list[str] | None) -> tuple[Any, list[str]]:
    """The run and its reference chips, every argument checked (ConfigError)."""
    from optuna.trial import TrialState

    from codesign.results.inspect import load_run
    from codesign.search.chip_file import resolve_chip

    run = _View(load_run(run_dir))
    chips = list(against or run.experiment.baselines or ("h100-sxm",))
    for c in chips:
        resolve_chip(run.experiment.chip_ref(c), "--against")  # an id, a chip or design file
    trials = run.trials
    if trials.empty:
        stored = len(run.run.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        hint = (f"none in the Parquet log but {stored} in the study: rebuild the log with "
                f"`codesign export {run_dir}`" if stored else "none (run a search first)")
        raise ConfigError(str(run_dir), "trials", "at least one finished trial to report", hint)
    if design is not None and design not in set(trials["trial"]):
        raise ConfigError(None, "--design", "a trial number of the run", str(design))
    return run, chips


def build_figures(run_dir: str | os.PathLike[str], design: int | None = None,
                  against: list[str] | None = None) -> dict[str, Any]:
    """The Plotly figures of :func:`build_report` (same arguments), by element id: those of
    :data:`PLOT_IDS` the run has, and ``plot-sensitivity-<trial>`` for each further design."""
    run, chips = _open(run_dir, design, against)
    return _assemble(run, chips, design).figures


def build_report(run_dir: str | os.PathLike[str], design: int | None = None,
                 against: list[str] | None = None) -> str:
    """The report of ``run_dir`` as one HTML string (Plotly inlined).

    ``design``: trial number for the sensitivity chart (default: the best feasible trial for
    each objective, with a picker); ``against``: reference chip ids (default: the
    experiment's baselines, else ``h100-sxm``). A run with no feasible trial still gets a
    report: why its trials failed (and the sensitivity of ``design``, if given, to see which
    knob makes it feasible)."""
    import plotly.offline

    run, chips = _open(run_dir, design, against)
    rep = _assemble(run, chips, design)
    trials, feasible, front = run.trials, run.all_feasible, run.pareto
    objs = ", ".join(f"{d} {o}" for o, d in run.objectives)
    body = [f"<h1>{html.escape(run.name)}</h1>",
            f'<p class="meta">{html.escape(run.experiment.description)}<br>objectives: {objs} · '
            f"{len(trials)} trials, {len(feasible)} feasible, {len(front)} on the front · "
            f"reference chips: {html.escape(', '.join(chips))}</p>"]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in rep.notes]
    body += [f"<h2>{html.escape(title)}</h2>{part}" for title, part in rep.sections]
    js = plotly.offline.get_plotlyjs()
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>codesign report: {html.escape(run.name)}</title>"
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
