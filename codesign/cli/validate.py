"""``codesign validate``: the model against published runs (or, ``--hardware``, catalog die
areas and TDPs). Parses nothing (see :mod:`codesign.cli`), calls :mod:`codesign.validate` and
prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from codesign.cli.format import _strict_json
from codesign.errors import ConfigError


def _validate_hardware(args: argparse.Namespace) -> int:
    from codesign.validate.hardware import GATE_CHIPS, gate_summary, hardware_table

    if args.cases is not None:
        raise ConfigError(None, "--hardware", "--hardware or --cases, not both (--hardware "
                          "checks catalog chips, --cases measured LLM runs)",
                          f"--hardware --cases {args.cases}")
    if args.workload != "all":
        raise ConfigError(None, "--hardware", "--hardware or --workload, not both",
                          f"--hardware --workload {args.workload}")
    rows = _strict_json(hardware_table())
    if args.json:
        print(json.dumps({"chips": rows}, allow_nan=False))
        return 0
    import pandas as pd

    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    columns = (  # (header, row key, format)
        ("node_nm", "process_nm", "g"), ("dies", "n_compute_dies", "d"),
        ("pred_dies", "predicted_n_dies", "d"), ("die_mm2", "die_area_mm2", ".0f"),
        ("pred_die_mm2", "predicted_die_area_mm2", ".0f"),
        ("area_err_%", "die_area_error_pct", "+.1f"), ("hbm", "hbm_stacks", "d"),
        ("max_hbm", "max_hbm_stacks", "d"), ("tdp_w", "tdp_w", ".0f"),
        ("pred_tdp_w", "predicted_tdp_w", ".0f"), ("tdp_err_%", "tdp_error_pct", "+.1f"),
        ("clock@tdp", "clock_at_tdp", ".2f"),
    )
    table = pd.DataFrame([{
        "id": r["id"],
        **{head: num(r[key], fmt) for head, key, fmt in columns},
        "assumptions / reason": "; ".join(x for x in (r["assumptions"], r["reason"]) if x),
    } for r in rows])
    width = {c: max([len(c), *(len(x) for x in table[c])]) for c in table.columns}
    text = table.to_string(index=False, justify="left", formatters={
        c: (lambda x, w=width[c]: f"{x:<{w}}") for c in table.columns})
    print("\n".join(line.rstrip() for line in text.splitlines()))
    s = gate_summary(rows)
    print()
    print(f"within {s['pct']:g} % among {', '.join(GATE_CHIPS)}: "
          f"die area {s['die_area']['within']}/{s['die_area']['compared']}, "
          f"TDP {s['tdp']['within']}/{s['tdp']['compared']} "
          f"(no published or predicted value: area {', '.join(s['die_area']['not_compared'])}; "
          f"TDP {', '.join(s['tdp']['not_compared']) or 'none'})")
    return 0


def _validate_serving(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesign.validate.serving import serving_errors

    if args.cases is not None and not Path(args.cases).is_file():
        raise ConfigError(Path(args.cases), "--cases", "a readable CSV with the columns of "
                          "serving_cases.csv", "no such file")
    res = serving_errors(args.cases)
    if args.json:
        print(json.dumps(_strict_json(res), allow_nan=False))
        return 0
    for r in res["rows"]:
        print(f"{r['case_id']:<30} {r['metric']:<30} measured {r['measured']:>12.4g}  "
              f"predicted {r['predicted']:>12.4g}  error {r['error'] * 100:+7.1f} %")
    for r in res["skipped"]:
        print(f"{r['case_id']:<30} {r['metric']:<30} skipped: {r['reason']}")
    print()
    for fam, s in res["summary"].items():
        med = s["median_abs_error"]
        print(f"{fam:<11} {s['rows']:>3} rows  median |error| "
              f"{'-' if med is None else f'{med * 100:.1f} %'}")
    return 0


def _validate_bands(args: argparse.Namespace) -> int:
    from codesign.validate.bands import band_rows, coverage
    from codesign.validate.predictions import default_cases_path, load_cases

    path = args.cases if args.cases is not None else default_cases_path()
    cases = load_cases(path, args.assume_input_len)
    if args.workload != "all":
        cases = [c for c in cases if c.workload == args.workload]
    rows = band_rows(cases, args.bands)
    cov = coverage(rows)
    if args.json:
        print(json.dumps(_strict_json({"rows": rows, "coverage": cov}), allow_nan=False))
        return 0

    def g(x: float | None) -> str:
        return "" if x is None else f"{x:.4g}"

    for r in rows:
        mark = "" if r["inside"] is None else ("inside" if r["inside"] else "OUTSIDE")
        print(f"{r['case_id']:<44} {r['metric']:<22} measured {g(r['measured']):>10}  "
              f"P10 {g(r['p10']):>10}  P50 {g(r['p50']):>10}  P90 {g(r['p90']):>10}  {mark}"
              + ("  (power error in-sample)" if r["in_sample"] else ""))
    print(f"\nshare inside P10-P90 (target 0.8): {cov['share']:.3f} "
          f"({cov['inside']}/{cov['rows']} rows; {args.bands} draws, each family's model "
          "error estimated without it)")
    for k, s in cov["by_kind"].items():
        print(f"  {k:<8} {s['inside']:>3}/{s['rows']:<3} {s['share']:.3f}")
    for f, s in cov["by_family"].items():
        print(f"  {f:<10} {s['inside']:>3}/{s['rows']:<3} {s['share']:.3f}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from codesign.model.specs import mapping_short

    if args.hardware:
        return _validate_hardware(args)
    if getattr(args, "serving", False):
        return _validate_serving(args)
    if getattr(args, "bands", None) is not None:
        return _validate_bands(args)
    from codesign.validate.predictions import (
        CASE_KEYS,
        compact,
        default_cases_path,
        load_cases,
        run_cases,
        summarize,
    )

    path = args.cases if args.cases is not None else default_cases_path()
    cases = load_cases(path, args.assume_input_len)
    if args.workload != "all":
        cases = [c for c in cases if c.workload == args.workload]
        if not cases:
            raise ConfigError(path, "workload", f"at least one {args.workload!r} row "
                              "(--workload filters the rows of --cases)", "none")
    df = run_cases(cases)
    rows = _strict_json([{k: r[k] for k in CASE_KEYS} for r in df.to_dict("records")])
    summary = _strict_json(summarize(df))
    if args.json:
        print(json.dumps({"cases": rows, "summary": summary}, allow_nan=False))
        return 0
    import pandas as pd

    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    table = pd.DataFrame([{
        "case_id": r["case_id"],
        "metric": r["metric"],
        "measured": num(r["measured"], ".4g"),
        "predicted": num(r["predicted"], ".4g"),
        "error_pct": num(r["error_pct"], "+.1f"),
        "mapping": mapping_short(r["mapping"]),
        "assumed": compact(r["assumed"]),
        "conflicts (row wins)": compact(r["conflicts"], conflicts=True),
        "reason": r["reason"] or "",  # why not predicted
    } for r in rows])
    left = ("case_id", "metric", "mapping", "assumed", "conflicts (row wins)", "reason")
    width = {c: max([len(c), *(len(x) for x in table[c])]) for c in left}
    text = table.to_string(index=False, justify="left", formatters={
        c: (lambda x, w=width[c]: f"{x:<{w}}") for c in left})
    print("\n".join(line.rstrip() for line in text.splitlines()))
    print()

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    def stats(s: dict[str, Any]) -> str:
        return (f"{s['predicted']}/{s['rows']} predicted, abs error % median "
                f"{pct(s['median_abs_error_pct'])}, mean {pct(s['mean_abs_error_pct'])}, "
                f"p90 {pct(s['p90_abs_error_pct'])}")

    print(f"cases: {summary['cases']} ({summary['predicted']} predicted, "
          f"{summary['not_predicted']} not predicted)  file: {path}")
    print(f"abs error %, all predicted: median {pct(summary['median_abs_error_pct'])}, "
          f"mean {pct(summary['mean_abs_error_pct'])}, p90 {pct(summary['p90_abs_error_pct'])}")
    for w, s in summary["by_workload"].items():
        print(f"  {w}: {stats(s)}")
    print(f"  MoE training: {stats(summary['moe_train'])}")
    if summary["by_family"]:
        fam = pd.DataFrame([{"family": f, "rows": s["rows"], "predicted": s["predicted"],
                             "median_abs_error_pct": pct(s["median_abs_error_pct"]),
                             "mean_abs_error_pct": pct(s["mean_abs_error_pct"]),
                             "p90_abs_error_pct": pct(s["p90_abs_error_pct"])}
                            for f, s in summary["by_family"].items()])
        print("by family:")
        print(fam.to_string(index=False))
    if summary["not_predicted_reasons"]:
        print("not predicted:")
        for reason, n in summary["not_predicted_reasons"].items():
            print(f"  {n} x {reason}")
    return 0
