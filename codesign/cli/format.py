"""What the ``codesign`` commands print: run summaries, the Pareto-front table, strict JSON.

Shared by the command modules of :mod:`codesign.cli`; like the rest of the
command line it only formats what the library returns.
"""

from __future__ import annotations

import io
import json
import math
import sys
from typing import Any

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
                 baselines: list[str] | None = None) -> None:
    """The front as a rich terminal table: objectives (with units), searched parameters, the
    best mapping (every degree), chip power, TTFT/ITL for serving, and each design's
    improvement over every baseline chip; ``baselines``: one label per baseline chip saying
    what "vs CHIP" means (:func:`codesign.results.compare.baseline_label`)."""
    from rich import box
    from rich.console import Console
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
    serving = any(r.get("ttft_s") is not None for r in rows)
    extra = [k for k in ("tdp_w", "chip_power_w", "n_chips",
                         *(("ttft_s", "itl_s") if serving else ("mfu",))) if k not in objs]
    for k in extra:
        table.add_column(k, justify="right")
    table.add_column("best mapping")
    vs = sorted({k for r in rows for k in r if "_vs_" in k})
    for k in vs:
        metric, chip = k.split("_vs_")
        table.add_column(f"vs {chip}\n{metric}", justify="right")
    for r in rows:
        table.add_row(
            str(r["trial"]), *(_fmt(r.get(f"value_{o}")) for o in objs),
            *(_fmt(r.get(f"param_{p}")) for p in params), *(_fmt(r.get(k)) for k in extra),
            _mapping_cell(r),
            *("" if r.get(k) is None else f"{r[k]:.2f}x" for k in vs))
    note = "improvement: > 1 = better than the baseline chip on that objective" if vs else ""
    if vs and baselines:
        note += "".join(f"\n  vs {label}" for label in baselines)
    if sys.stdout.isatty():
        console = Console(highlight=False)
        console.print(table)
        if note:
            console.print(note, markup=False)
        return
    buf = io.StringIO()  # piped: no colour, no wrapping, no trailing blanks
    Console(file=buf, width=100_000, highlight=False, color_system=None).print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
    if note:
        print(note)


def _strict_json(value: Any) -> Any:
    """``value`` with NaN/inf (and pandas' missing values) as None and numpy scalars as
    Python numbers, so ``json.dumps(allow_nan=False)`` succeeds."""
    if isinstance(value, dict):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
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

