"""The ``codesign`` commands on a run's results: ``pareto``, ``report``, ``compare``, ``extend``.

Each parses nothing (see :mod:`codesign.cli`), calls :mod:`codesign.results` and prints.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from codesign.cli.format import (
    Column,
    _fmt,
    _print_front,
    _strict_json,
    num,
    print_fitted,
    terminal_width,
    unit_of,
    with_unit,
)
from codesign.errors import ConfigError


def cmd_pareto(args: argparse.Namespace) -> int:
    from codesign.search.parquet_log import schema
    from codesign.search.storage.log_state import front_source
    from codesign.search.storage.rundir import load_run

    exp, run = load_run(args.run_dir)
    rows, study, note = front_source(args.run_dir, exp, run)  # the log, if it is whole
    if note:
        print(note, file=sys.stderr)
    # every column of the run, in every format: the familiar ones first, then the rest of
    # the Parquet schema (cp, ep, vpp, sequence_parallel, TTFT/ITL, ...), then what the
    # front adds (improvement over each baseline for every objective, mapping extras)
    first = ["trial", *[f"value_{o.metric}" for o in exp.objectives],
             *[f"param_{p.name}" for p in exp.space.params],
             "n_chips", "tdp_w", "chip_power_w", "mfu", "map_tp", "map_pp", "map_dp", "map_cp",
             "map_ep", "map_vpp", "map_micro_batch", "map_recompute", "map_zero",
             "map_sequence_parallel"]
    cols = list(dict.fromkeys([*first, *schema(exp).names,
                               *(k for r in rows for k in r if not k.startswith("_"))]))
    chips = sorted({k.split("_vs_", 1)[1] for k in cols if "_vs_" in k})
    refs = []
    designs: dict[str, dict | None] = {}
    if chips:  # the model only where there are baselines to project
        from codesign.results.compare import BASELINE_MEANING, baseline_label, projection
    for chip in chips:
        proj = projection(exp, chip, study)
        designs[chip] = None if proj is None else proj["design"]
        changes = None if proj is None else proj["changes"]
        refs.append({"id": chip, "meaning": BASELINE_MEANING,
                     "trial": None if proj is None else proj["trial"],
                     "projection_changes": changes or {},
                     "label": baseline_label(chip, changes)})
    unc = None
    against = args.against or []
    if against and args.uncertainty is None:
        raise ConfigError(None, "--against", "--against together with --uncertainty",
                          f"--against {against[0]} alone")
    if args.uncertainty is not None:
        from codesign.results.uncertainty import band_columns, baseline_designs, front_uncertainty

        designs.update(baseline_designs(exp, [c for c in against if c not in designs])[0])
        unc = front_uncertainty(exp, rows, designs, args.uncertainty)
        extra = band_columns(unc)
        rows = [{**r, **e} for r, e in zip(rows, extra, strict=True)]
        cols += [c for c in (extra[0] if extra else {}) if c not in cols]
    if args.format == "json":
        doc = {"study": run.study_name,
               "objectives": [[o.metric, o.direction] for o in exp.objectives],
               "columns": cols, "baselines": refs,
               "front": [{c: r.get(c) for c in cols} for r in rows]}
        if unc is not None:
            doc["uncertainty"] = unc
        print(json.dumps(_strict_json(doc), default=str, allow_nan=False))
        return 0
    import pandas as pd

    df = pd.DataFrame(rows, columns=cols)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    _print_front(run.study_name, exp, rows, [r["label"] for r in refs], wide=args.wide)
    if unc is not None:
        _print_uncertainty(unc)
    return 0


def _print_uncertainty(unc: dict) -> None:
    """Per front design: each objective's P10-P90 and the probability it beats each
    baseline (sure: >= 0.9)."""
    from codesign.results.uncertainty import WIN_SURE

    print(f"\nuncertainty: {unc['draws']} paired draws (seed {unc['seed']}); P(beats) over "
          f"the same draws, >= {WIN_SURE:g} marked *")
    for b in unc["baselines"]:
        print(f"  baseline {b['id']}: " + ", ".join(
            f"{o} {_fmt(lo)}..{_fmt(hi)}" for o, (lo, _, hi) in b["bands"].items()))
    for d in unc["designs"]:
        parts = [f"{o} {_fmt(lo)}..{_fmt(hi)}" for o, (lo, _, hi) in d["bands"].items()]
        wins = "; ".join(f"vs {cid}: " + ", ".join(
            f"{o} {p:.2f}{'*' if p >= WIN_SURE else ''}" for o, p in ps.items())
            for cid, ps in d["p_beats"].items())
        print(f"  trial {d['trial']}: " + ", ".join(parts) + (f"  |  {wins}" if wins else ""))


def cmd_report(args: argparse.Namespace) -> int:
    from codesign.results.report import write_report

    path = write_report(args.run_dir, args.out, args.design, args.against)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from codesign.model.pack import UnknownSpecError
    from codesign.results.compare import compare_run

    try:
        doc = compare_run(args.run_dir, args.against)
    except UnknownSpecError as exc:  # neither projectable nor evaluable as published
        raise ConfigError(None, "--against", "a chip with every number the model needs",
                          str(exc)) from None
    if args.format == "json":
        print(json.dumps(_strict_json(doc), allow_nan=False))
        return 0
    _print_compare(doc, args.wide)
    return 0


def _print_compare(doc: dict, wide: bool = False, width: int | None = None) -> None:
    """``compare``'s text: per objective, the best design next to the baseline, each metric
    and spec value with its unit and the improvement.

    On a terminal (or at ``width`` columns) each table is fitted like ``pareto``'s (whole
    columns left out, named below), rows where neither side has a value are left out (and
    counted) and long lines are wrapped; ``wide``: every row and column, nothing wrapped;
    piped: every row and column, nothing wrapped."""
    if width is None and not wide:
        width = terminal_width()
    fitted = width is not None and not wide

    def say(text: str, indent: str = "  ") -> None:
        if fitted and width is not None and len(text) > width:
            import textwrap

            text = textwrap.fill(text, width, subsequent_indent=indent,
                                 break_long_words=False, break_on_hyphens=False)
        print(text)

    base = doc["baseline"]
    say(f"{doc['study']}: best design per objective vs {base['id']} "
        f"(same workload and cluster; improvement > 1 = better)", "")
    say(f"  vs {base['label']}", "    ")
    if not base["feasible"]:
        say(f"  {base['id']} is infeasible here: {base['reason']}", "    ")
    cat = base["catalog"]
    if base["meaning"] == "projected":
        shown = ", ".join(f"{k} {with_unit(v, unit_of(k))}" for k, v in cat["metrics"].items()
                          if k in {b["objective"] for b in doc["best"]})
        what = "the chip of" if str(base["id"]).endswith(".toml") else "the catalog"
        say(f"  ({what} {base['id']} itself, not projected: "
            + (shown if cat["feasible"] else f"infeasible: {cat['reason']}") + ")", "    ")
    for b in doc["best"]:
        print(f"\nbest {b['objective']} ({b['direction']}): trial {b['trial']}")
        rows = [(k, base["metrics"].get(k), b["metrics"].get(k), b["improvement"].get(k))
                for k in b["metrics"]]
        rows += [(k, base["spec"].get(k), b["spec"].get(k), None) for k in b["spec"]
                 if k not in b["metrics"]]
        empty = [r for r in rows if _missing(r[1]) and _missing(r[2])]
        if fitted:
            rows = [r for r in rows if r not in empty]
        cols = [Column("metric", [k for k, *_ in rows], justify="left"),
                Column(base["id"], [num(ref) for _, ref, _, _ in rows]),
                Column("design", [num(new) for _, _, new, _ in rows]),
                Column("unit", [unit_of(k) for k, *_ in rows], justify="left"),
                Column("improvement", ["" if imp is None else f"{num(imp)}x"
                                       for *_, imp in rows])]
        notes = [f"{len(empty)} rows with no value on either side left out "
                 f"({', '.join(k for k, *_ in empty[:3])}{', ...' if len(empty) > 3 else ''})"
                 "; --wide shows them"] if fitted and empty else []
        print_fitted(cols, "", notes, width if fitted else None, "--wide or --format json")
        changes = ", ".join(f"{k} {num(a)} -> {with_unit(v, unit_of(k))}"
                            for k, (a, v) in b["changed"].items())
        say(f"  changed vs {base['id']} as a design point: {changes or 'nothing'}", "    ")


def _missing(value: object) -> bool:
    """No value: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct_cell(value: object) -> str:
    v = float(value) if isinstance(value, int | float) else math.nan
    return "" if math.isnan(v) else f"{v:+.1f}%"


def cmd_extend(args: argparse.Namespace) -> int:
    from codesign.model.metrics import METRICS
    from codesign.results.extend import extension_ladder

    res = extension_ladder(args.run_dir, args.trial, args.baseline)
    rungs = res.rungs()
    if args.json:
        print(json.dumps(_strict_json({
            "study": res.study, "trial": res.trial, "baseline": res.baseline,
            "baseline_trial": res.baseline_trial,
            "objectives": [list(o) for o in res.objectives],
            "order": f"greedy on {res.objectives[0][0]} ({res.objectives[0][1]})",
            "units": {m: METRICS[m][0] for m in res.metrics},
            "matches_stored": res.matches_stored, "rungs": rungs}), allow_nan=False))
        return 0
    first, direction = res.objectives[0]
    start = f"{res.baseline} (trial {res.baseline_trial})" if res.baseline_trial is not None \
        else f"{res.baseline} (projected)"
    print(f"{res.study}: {start} -> trial {res.trial}, one change per rung, the best on "
          f"{first} ({direction}) first")
    head = [("rung", ""), ("change", "from -> to")]
    for m in res.changed:
        head += [(m, METRICS[m][0]), ("vs prev", "%"), ("alone", "%")]
    rest = [m for m in res.metrics if m not in res.changed]
    head += [(m, METRICS[m][0].split(" (")[0]) for m in rest] + [("status", "")]
    table = []
    for r in rungs:
        change = (f"{res.baseline} as projected" if r["param"] is None else
                  f"{r['param']} {_fmt(r['from'])} -> {_fmt(r['to'])} {r['unit']}".rstrip())
        row = [str(r["rung"]), change]
        for m in res.changed:
            row += [_fmt(r[m]), _pct_cell(r[f"change_pct_{m}"]), _pct_cell(r[f"alone_pct_{m}"])]
        row += [_fmt(r[m]) for m in rest]
        status = "ok" if r["constraints_ok"] else f"infeasible: {r['why']}"
        if r["alone_feasible"] is False:
            status += f"; alone infeasible: {r['alone_why']}"
        table.append([*row, status])
    lines = [[h[0] for h in head], [h[1] for h in head], *table]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        cells = [c.ljust(w) if i in (1, len(line) - 1) else c.rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
    last = rungs[-1]
    for m in res.changed:
        print(f"{m}: {_fmt(rungs[0][m])} -> {_fmt(last[m])} {METRICS[m][0]} "
              f"({_pct_cell(last[f'total_pct_{m}']) or 'n/a'} over {len(rungs) - 1} changes)")
    print(f"vs prev: change from the rung above; alone: the change applied alone to "
          f"{res.baseline} (where the two differ, the changes interact)")
    return 0
