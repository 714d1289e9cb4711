"""What the ``codesign`` commands print: run summaries, the Pareto-front table, strict JSON,
units and compact numbers, and tables fitted to the terminal.

Shared by the command modules of :mod:`codesign.cli`; like the rest of the
command line it only formats what the library returns.

Tables for people (``pareto``, ``compare``, ``recommend``) fit the terminal's width: columns
are taken in order of priority and whole columns that do not fit are left out, named in one
line below the table (``--wide`` shows all); no cell is cut and no row wraps. Piped (stdout
not a terminal), ``pareto`` and ``recommend`` print every column as they always did, since
scripts read them.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from codesign.cli.tables import (  # noqa: F401 - re-exported: the commands' formatting
    _SI,
    _SUFFIX_UNITS,
    SHORT_UNITS,
    Column,
    _break_title,
    _header,
    _says_unit,
    build_table,
    cell_len,
    fit_columns,
    left_out_note,
    num,
    print_fitted,
    render_text,
    seconds,
    si,
    table_width,
    terminal_width,
    unit_of,
    with_unit,
)

PROG = "codesign"


def _print_summary(summary: Any, as_json: bool) -> None:
    from codesign.search.study import summary_dict

    if as_json:
        print(json.dumps(summary_dict(summary)))
        return
    rate = summary.trials_run / summary.seconds if summary.seconds > 0 else 0.0
    print(f"study {summary.study_name}: {summary.trials_run} trials run in "
          f"{summary.seconds:.1f} s ({rate:.1f}/s); {summary.trials_total_complete} complete, "
          f"{summary.feasible} feasible")
    print(f"repeats: {summary.repeats} proposals repeated a design already in the study "
          "(drawn again or given its stored result, never evaluated twice)")
    print(f"Pareto front: {summary.pareto_size} designs -> {summary.pareto_path}")
    print(f"all trials (Parquet): {summary.trials_path}")
    print(f"show the front: codesign pareto {summary.run_dir}")


def _mapping_cell(r: dict[str, Any]) -> str:
    """Every mapping degree of a front row, abbreviated (``tp2 pp1 dp512 cp1 vpp1 mb1 none
    z2 sp`` for training; serving adds ``cp`` and ``vpp`` when above 1)."""
    from codesign.model.specs import mapping_short

    m = {k.removeprefix("map_"): r.get(k) for k in r if k.startswith("map_")}
    if not m.get("tp"):
        return ""
    text = mapping_short(m)
    if m.get("recompute") is None:  # serving: show any degree mapping_short leaves out
        text += "".join(f" {k}{m[k]}" for k in ("cp", "vpp") if (m.get(k) or 1) > 1)
    elif m.get("sequence_parallel"):
        text += " sp"
    return text


def _print_front(study_name: str, exp: Any, rows: list[dict[str, Any]],
                 baselines: list[str] | None = None, wide: bool = False,
                 width: int | None = None) -> None:
    """The front as a terminal table: objectives (with units), searched parameters, chip
    power, TTFT/ITL for serving, the best mapping (every degree) and each design's
    improvement over every baseline chip; ``baselines``: one label per baseline chip saying
    what "vs CHIP" means (:func:`codesign.results.compare.baseline_label`).

    On a terminal (or at ``width`` columns) the columns are chosen in that order of priority
    and whole columns that do not fit are left out (one line names them); ``wide``: every
    column whatever the width. Piped (no terminal, no ``width``; ``--wide`` or not): every
    column at full width and the numbers as before, for scripts."""
    objs = [o.metric for o in exp.objectives]
    serving = any(r.get("ttft_s") is not None for r in rows)
    extra = [k for k in ("tdp_w", "chip_power_w", "n_chips",
                         *(("ttft_s", "itl_s") if serving else ("mfu",))) if k not in objs]
    vs = sorted({k for r in rows for k in r if "_vs_" in k})
    note = "improvement: > 1 = better than the baseline chip on that objective" if vs else ""
    if vs and baselines:
        note += "".join(f"\n  vs {label}" for label in baselines)
    if width is None:
        width = terminal_width()
        if width is None:  # piped, --wide or not: the shape scripts read
            _print_front_piped(study_name, exp, rows, extra, vs, note)
            return
    arrows = {"maximize": "↑", "minimize": "↓"}
    cols = [Column("trial", [str(r["trial"]) for r in rows])]
    cols += [Column(f"{o.metric} {arrows[o.direction]}", [num(r.get(f"value_{o.metric}"))
                                                          for r in rows],
                    unit_of(o.metric), style="bold", name=o.metric) for o in exp.objectives]
    cols += [Column(p.name, [num(r.get(f"param_{p.name}")) for r in rows], unit_of(p.name))
             for p in exp.space.params]
    for k in extra:
        if k == "mfu":
            cols.append(Column(k, [num(None if r.get(k) is None else 100.0 * r[k])
                                   for r in rows], "%"))
        else:
            cols.append(Column(k, [num(r.get(k)) for r in rows], unit_of(k)))
    cols.append(Column("best mapping", [_mapping_cell(r) for r in rows], justify="left",
                       name="best mapping"))
    for k in vs:
        metric, chip = k.split("_vs_")
        cols.append(Column(f"vs {chip} {metric}", ["" if r.get(k) is None else f"{r[k]:.2f}x"
                                                   for r in rows], max_lines=3))
    title = (f"{study_name}: {len(rows)} Pareto-optimal feasible designs "
             f"({', '.join(f'{o.direction} {o.metric}' for o in exp.objectives)})")
    if not wide and width is not None and not any(
            c.title.startswith("vs ") for c in fit_columns(cols, width)[0]):
        note = ""  # no "vs" column in the table: nothing to explain
    print_fitted(cols, title, note.splitlines(), None if wide else width,
                 "--wide or --format csv")


def _print_front_piped(study_name: str, exp: Any, rows: list[dict[str, Any]], extra: list[str],
                       vs: list[str], note: str) -> None:
    """The front for a pipe: every column, full numbers (``%.4g``), no wrapping, no colour;
    scripts read it (the shape it always had)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from codesign.model.metrics import METRICS

    objs = [o.metric for o in exp.objectives]
    arrows = {"maximize": "↑", "minimize": "↓"}
    table = Table(box=box.SIMPLE_HEAD, title=(
        f"{study_name}: {len(rows)} Pareto-optimal feasible designs "
        f"({', '.join(f'{o.direction} {o.metric}' for o in exp.objectives)})"),
        title_justify="left")
    table.add_column("trial", justify="right")
    for o in exp.objectives:
        unit = METRICS.get(o.metric, ("", ""))[0]
        table.add_column(escape(f"{o.metric} {arrows[o.direction]}\n{unit}"), justify="right",
                         style="bold")
    params = [p.name for p in exp.space.params]
    for name in params:
        table.add_column(name, justify="right")
    for k in extra:
        table.add_column(k, justify="right")
    table.add_column("best mapping")
    for k in vs:
        metric, chip = k.split("_vs_")
        table.add_column(f"vs {chip}\n{metric}", justify="right")
    for r in rows:
        table.add_row(
            str(r["trial"]), *(_fmt(r.get(f"value_{o}")) for o in objs),
            *(_fmt(r.get(f"param_{p}")) for p in params), *(_fmt(r.get(k)) for k in extra),
            _mapping_cell(r),
            *("" if r.get(k) is None else f"{r[k]:.2f}x" for k in vs))
    sys.stdout.write(render_text(table, 100_000))
    if note:
        print(note)


_PLAIN = frozenset((str, int, bool, type(None)))
_INF = float("inf")


def _strict_json(value: Any) -> Any:
    """``value`` with NaN/inf (and pandas' missing values) as None and numpy scalars as
    Python numbers, so ``json.dumps(allow_nan=False)`` succeeds."""
    if isinstance(value, dict):  # plain values kept as they are without a call each
        return {str(k): v if type(v) in _PLAIN or (type(v) is float and -_INF < v < _INF)
                else _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN or (type(v) is float and -_INF < v < _INF)
                else _strict_json(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def recommend_table(rec: dict[str, Any], wide: bool = False, width: int | None = None) -> None:
    """The ranked designs of ``codesign recommend`` (:func:`codesign.results.recommend.
    recommend`): rank, trial, score, each preference's value (with its unit) and improvement
    over the reference, then each design's reason line.

    On a terminal (or at ``width`` columns) fitted like the front (whole preference columns
    left out, named below; reasons wrapped); ``wide``: every column; piped (``--wide`` or
    not): as it always was."""
    if width is None:
        width = terminal_width()
        if width is None:  # piped, --wide or not: every column, as it always was
            _recommend_piped(rec)
            return
    cols = [Column("#", [str(r["rank"]) for r in rec["recommendations"]]),
            Column("trial", [str(r["trial"]) for r in rec["recommendations"]]),
            Column("score", ["" if r["score"] is None else f"{r['score']:.3f}"
                             for r in rec["recommendations"]])]
    for p in rec["preferences"]:
        cells = []
        for r in rec["recommendations"]:
            v, g = r["metrics"].get(p["metric"]), r["improvement"].get(p["metric"])
            cells.append(num(v) + ("" if g is None else f" ({g:.2f}x)"))
        cols.append(Column(p["metric"], cells, unit_of(p["metric"]), name=p["metric"]))
    print_fitted(cols, "", [], None if wide else width, "--wide or --json")
    for r in rec["recommendations"]:
        line = f"#{r['rank']} trial {r['trial']}: {r['reason']}"
        if wide or width is None:
            print(line)
        else:
            import textwrap

            print(textwrap.fill(line, width, subsequent_indent="    ", break_long_words=False,
                                break_on_hyphens=False))


def _recommend_piped(rec: dict[str, Any]) -> None:
    """``recommend``'s table for a pipe: every column, ``%.4g`` numbers (its old shape)."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right")
    table.add_column("trial", justify="right")
    table.add_column("score", justify="right")
    for p in rec["preferences"]:
        unit = p["unit"].split(" (")[0]
        table.add_column(escape(f"{p['metric']}\n{unit}"), justify="right")
    for r in rec["recommendations"]:
        cells = []
        for p in rec["preferences"]:
            v, g = r["metrics"].get(p["metric"]), r["improvement"].get(p["metric"])
            cells.append(_fmt(v) + ("" if g is None else f" ({g:.2f}x)"))
        table.add_row(str(r["rank"]), str(r["trial"]),
                      "" if r["score"] is None else f"{r['score']:.3f}", *cells)
    Console(highlight=False, width=100_000).print(table)
    for r in rec["recommendations"]:
        print(f"#{r['rank']} trial {r['trial']}: {r['reason']}")
