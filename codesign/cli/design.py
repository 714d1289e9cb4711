"""The ``codesign`` commands that turn a run into an answer: ``recommend``
(:mod:`codesign.results.recommend`) and ``export-design``
(:mod:`codesign.results.export_design`). Parse nothing, call the library, print."""

from __future__ import annotations

import argparse
import json

from codesign.cli.format import _strict_json


def cmd_recommend(args: argparse.Namespace) -> int:
    from codesign.cli.format import recommend_table
    from codesign.results.recommend import headline, recommend

    rec = recommend(args.run_dir, args.objective, args.top, args.against)
    if args.json:
        print(json.dumps(_strict_json(rec), allow_nan=False))
        return 0
    prefs = ", ".join(f"{p['metric']} ({p['direction']}, weight {p['weight']:g})"
                      for p in rec["preferences"])
    _say(f"{rec['study']}: {rec['front_designs']} feasible front designs, ranked by {prefs}; "
         f"reference {rec['reference']['label']}", args.wide)
    recommend_table(rec, wide=args.wide)
    for line in headline(rec).splitlines():
        _say(line, args.wide)
    return 0


def _say(line: str, wide: bool) -> None:
    """Print ``line``, wrapped at the terminal's width on a terminal (unless ``wide``),
    continuation lines indented under its first word."""
    import shutil
    import sys
    import textwrap

    if wide or not sys.stdout.isatty():
        print(line)
        return
    width = shutil.get_terminal_size().columns
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    print(textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                        break_on_hyphens=False))


def cmd_export_design(args: argparse.Namespace) -> int:
    from codesign.results.export_design import export_design

    out = export_design(args.run_dir, args.trial, args.out, args.force)
    if args.json:
        print(json.dumps(_strict_json(out), allow_nan=False))
        return 0
    state = "feasible" if out["feasible"] else "infeasible"
    print(f"wrote {out['path']}: trial {out['trial']} of {out['study']} ({state})")
    for note in out["notes"]:
        print(f"note: {note}")
    print(f"evaluate it: {out['command']}")
    return 0
