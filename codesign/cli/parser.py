"""The argument parser of the ``codesign`` command: one subcommand per command, each with
its defaults and an example in its ``--help``."""

from __future__ import annotations

import argparse

from codesign.cli.flags import _float_in, _Help, _int_at_least, _Parser, _positive_float  # noqa: F401
from codesign.cli.format import PROG
from codesign.cli.parser_evaluate import add_evaluate
from codesign.model.traffic import ASSUMED_INPUT_LEN


def parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from codesign import __version__
    from codesign.search.experiment import SAMPLERS

    p = _Parser(prog=PROG, formatter_class=_Help, epilog=TOUR,
                description="Co-design search for AI datacenter chips and clusters: an Optuna "
                "study proposes chip and cluster designs, an analytical model scores each on "
                "an LLM workload with its best parallel mapping, and the Pareto fronts are "
                "logged to Parquet.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="COMMAND")

    s = sub.add_parser("search", help="run (or continue) a study from an experiment file")
    s.add_argument("experiment", help="experiment TOML file")
    s.add_argument("--trials", type=_int_at_least(1),
                   help="trials to run now (default: what is left of the experiment's budget)")
    s.add_argument("--study", help="study name (default: the experiment's name)")
    s.add_argument("--storage", help="journal file path or database URL "
                   "(default: embedded journal RUN_DIR/study.log)")
    s.add_argument("--out", help="run directory (default: runs/<study>)")
    s.add_argument("--sampler", choices=SAMPLERS)
    s.add_argument("--seed", type=_int_at_least(0))
    s.add_argument("--workers", type=_int_at_least(1), default=1,
                   help="processes sharing the study on this machine")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--allow-space-change", action="store_true",
                   help="continue a study whose experiment file has changed")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--warm-start", action="append", metavar="RUN_DIR",
                   help="queue the feasible Pareto front of another run first, projected "
                        "into this search space (once per study; repeatable)")

    r = sub.add_parser("resume", help="continue a study from its run directory")
    r.add_argument("run_dir")
    r.add_argument("--trials", type=_int_at_least(1))
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--json", action="store_true")

    w = sub.add_parser("worker", help="join a study from another process or machine")
    w.add_argument("experiment")
    w.add_argument("--storage", required=True)
    w.add_argument("--study", required=True)
    w.add_argument("--trials", type=_int_at_least(1))
    w.add_argument("--out", help="run directory for this worker's Parquet log")
    w.add_argument("--no-progress", action="store_true")
    w.add_argument("--json", action="store_true")

    pa = sub.add_parser("pareto", help="print the Pareto front of a run")
    pa.add_argument("run_dir")
    pa.add_argument("--format", choices=("table", "csv", "json"), default="table",
                    help="table: fitted to the terminal; csv or json: every column")
    pa.add_argument("--wide", action="store_true",
                    help="the table with every column whatever the terminal's width")
    pa.add_argument("--uncertainty", nargs="?", const=256, default=None, type=_int_at_least(1),
                    metavar="N", help="bands of every front design's objectives and the "
                    "probability it beats each baseline, from N paired draws (default 256)")
    pa.add_argument("--against", action="append", metavar="CHIP",
                    help="with --uncertainty: also the probability of beating this chip (a "
                    "catalog id, a spec-sheet chip TOML or a design file) as projected into "
                    "the search space (repeatable; default: the experiment's baselines)")

    rp = sub.add_parser("report", help="one self-contained HTML report of a run (plots)")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--out", help="HTML file to write (default: RUN_DIR/report.html)")
    rp.add_argument("--design", type=_int_at_least(0), metavar="TRIAL",
                    help="trial of the sensitivity chart (default: the best design of each "
                    "objective, with a picker)")
    rp.add_argument("--against", action="append", metavar="CHIP",
                    help="reference chip: a catalog id, a spec-sheet chip TOML or a design "
                    "file (repeatable; default: the experiment's baselines, else h100-sxm)")

    add_evaluate(sub)

    dr = sub.add_parser("doctor", help="check a run's journal; --repair mends a torn one")
    dr.add_argument("target", help="run directory or journal file")
    dr.add_argument("--repair", action="store_true",
                    help="back the journal up, then cut a torn line, set back a flipped bit, "
                         "clear a stale lock, and level the Parquet log with the storage")
    dr.add_argument("--restore-backup", action="store_true",
                    help="with --repair: first go back to the newest study.log.bak-*")
    dr.add_argument("--truncate", action="store_true",
                    help="with --repair: keep the journal lines before damage nothing mends")

    ex = sub.add_parser("export", help="rebuild a run's Parquet log from its storage")
    ex.add_argument("run_dir")

    cp = sub.add_parser("compact", help="merge a run's small Parquet files into larger ones "
                        "and record the log's state (pareto and report then skip the journal)")
    cp.add_argument("run_dir")
    cp.add_argument("--json", action="store_true")

    cm = sub.add_parser("compare", help="best designs of a run next to a reference chip")
    cm.add_argument("run_dir")
    cm.add_argument("--against", required=True, help="reference chip: a catalog id (e.g. "
                    "h100-sxm), a spec-sheet chip TOML or a design file (export-design)")
    cm.add_argument("--format", choices=("table", "json"), default="table")
    cm.add_argument("--wide", action="store_true",
                    help="the table with every column whatever the terminal's width")

    xt = sub.add_parser(
        "extend", help="from a baseline chip to a design, one change at a time",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Instantiate, then extend: start at one of the experiment's baseline chips\n"
        "as the search projects it, apply the searched parameters in which the design differs\n"
        "one per rung (greedily: the change best on the first objective next), each rung\n"
        "evaluated by the model, and show what each extension buys; also each change alone\n"
        "on the baseline (where the two gains differ, the changes interact).",
        epilog="example:\n  codesign search experiments/instantiate_extend.toml\n"
        "  codesign extend runs/instantiate_extend\n"
        "  codesign extend runs/instantiate_extend --trial 42 --baseline h100-sxm --json")
    xt.add_argument("run_dir", help="run directory of a study (codesign search wrote it)")
    xt.add_argument("--trial", type=_int_at_least(0),
                    help="target trial (default: the feasible front design best on the "
                    "first objective)")
    xt.add_argument("--baseline", metavar="CHIP_ID",
                    help="baseline chip, one of the experiment's baselines (default: its "
                    "first)")
    xt.add_argument("--json", action="store_true",
                    help="print one JSON object with a list of rungs (default: a table)")

    c = sub.add_parser("catalog", help="list reference chips and models")
    c.add_argument("--json", action="store_true")

    v = sub.add_parser("validate", help="predictions vs published measurements")
    v.add_argument("--cases", help="CSV with the columns of calibration.csv "
                   "(default: the packaged calibration.csv)")
    v.add_argument("--workload", choices=("train", "infer", "all"), default="all",
                   help="which rows to predict (default: all)")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--assume-input-len", type=_int_at_least(1), metavar="TOKENS",
                   help="prompt length of inference rows whose input_len is empty (the "
                   f"ML.ENERGY power rows; default {ASSUMED_INPUT_LEN}, the mean "
                   "LMSYS-Chat-1M request of a two-turn chat); listed in each such row's "
                   "assumed")
    v.add_argument("--hardware", action="store_true",
                   help="predicted vs published die area and TDP of the catalog chips "
                   "(instead of the LLM measurements)")
    v.add_argument("--serving", action="store_true",
                   help="serving under traffic: disaggregated and percentile-latency "
                   "measurements (serving_cases.csv, or --cases with its columns)")
    v.add_argument("--bands", nargs="?", const=256, default=None, type=_int_at_least(1),
                   metavar="N", help="check the uncertainty bands: the share of measured "
                   "values inside each row's P10-P90 band from N paired draws (default 256), "
                   "the model error of each family estimated without it")

    b = sub.add_parser("bench", help="evaluator, mapping-search and search-loop throughput")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--quick", action="store_true", help="fewer search trials (300 instead of 2000)")
    b.add_argument("--search-trials", type=_int_at_least(1),
                   help="trials of the search-loop benchmark (overrides --quick)")
    b.add_argument("--repeats", type=_int_at_least(1), default=2,
                   help="runs of each side of the search comparison, interleaved (default 2)")
    b.add_argument("--long", type=_int_at_least(1), metavar="N",
                   help="also one search of N trials (e.g. 100000): trials/s along the run, "
                        "per-trial cost end/start, peak RSS")
    b.add_argument("--long-trivial", action="store_true",
                   help="the --long search with a trivial objective instead of the model")
    rc = sub.add_parser("recommend", help="the best designs of a run under stated preferences, "
                        "each with its reason")
    rc.add_argument("run_dir", help="run directory of a study (codesign search wrote it)")
    rc.add_argument("--objective", action="append", metavar="METRIC[=WEIGHT]",
                    help="a preference: a metric and its weight (repeatable; default: the "
                    "experiment's objectives, weight 1 each)")
    rc.add_argument("--top", type=_int_at_least(1), default=3, help="designs to list")
    rc.add_argument("--against", metavar="CHIP",
                    help="reference chip, a catalog id or a spec-sheet TOML, as projected into "
                    "the search space (default: the experiment's first baseline, else the "
                    "front's median design)")
    rc.add_argument("--json", action="store_true", help="print one JSON object")
    rc.add_argument("--wide", action="store_true",
                    help="print every column whatever the terminal's width")

    xd = sub.add_parser("export-design", help="write one design of a run as a TOML file that "
                        "evaluate --chip reads back")
    xd.add_argument("run_dir", help="run directory of a study (codesign search wrote it)")
    xd.add_argument("trial", type=_int_at_least(0), help="trial number (pareto lists them)")
    xd.add_argument("-o", "--out", required=True, metavar="FILE.toml",
                    help="file to write (a design file: chip, cluster, workload)")
    xd.add_argument("--force", action="store_true", help="replace FILE.toml if it exists")
    xd.add_argument("--json", action="store_true", help="print one JSON object")

    _finish(sub)
    return p


TOUR = """example (the architect's path):
  codesign evaluate --chip examples/chips/my_accelerator.toml --workload config.json
  codesign search experiments/quickstart.toml
  codesign recommend runs/quickstart --against h100-sxm
  codesign export-design runs/quickstart 42 -o trial42.toml
  codesign evaluate --chip trial42.toml

`codesign COMMAND --help` shows each command's flags, defaults and an example; docs/config.md
documents every key of the TOML files."""

EXAMPLES = {
    "search": "codesign search experiments/quickstart.toml --trials 320",
    "resume": "codesign resume runs/quickstart --trials 320",
    "worker": "codesign worker experiments/quickstart.toml --storage postgresql://host/db "
              "--study quickstart",
    "pareto": "codesign pareto runs/quickstart --uncertainty --against h100-sxm",
    "report": "codesign report runs/quickstart -o quickstart.html",
    "evaluate": "codesign evaluate --chip h100-sxm --workload llama3-70b --n-chips 1024 "
                "--seq-len 8192 --global-batch 512",
    "doctor": "codesign doctor runs/quickstart --repair",
    "export": "codesign export runs/quickstart",
    "compact": "codesign compact runs/quickstart",
    "compare": "codesign compare runs/quickstart --against h100-sxm",
    "extend": "codesign extend runs/instantiate_extend --trial 42 --baseline h100-sxm",
    "catalog": "codesign catalog --json",
    "validate": "codesign validate --workload train",
    "bench": "codesign bench --quick",
    "recommend": "codesign recommend runs/quickstart --objective tokens_per_joule=2 "
                 "--objective tokens_per_s --top 5",
    "export-design": "codesign export-design runs/quickstart 42 -o trial42.toml && "
                     "codesign evaluate --chip trial42.toml",
}
"""One example per subcommand, the last line of its ``--help``."""

_PLAIN_HELP = {
    "--json": "print one JSON object instead of text",
    "run_dir": "run directory of a study (codesign search wrote it)",
    "--trials": "trials to run now",
    "--no-progress": "no progress bar",
    "--sampler": "Optuna sampler (default: the experiment's [search] sampler)",
    "--seed": "sampler seed (default: the experiment's [search] seed)",
    "--storage": "journal file path or database URL of the study",
    "--study": "study name",
    "experiment": "experiment TOML file",
    "--out": "run directory for this worker's Parquet log",
}
"""Help of arguments that had none (so that every one says what it is)."""


def _finish(sub: argparse._SubParsersAction) -> None:
    """Every subcommand: defaults in its help, its example last, a help line for every
    argument."""
    for name, sp in sub.choices.items():
        sp.formatter_class = _Help
        example = EXAMPLES.get(name)
        if example and not sp.epilog:
            sp.epilog = f"example:\n  {example}"
        for action in sp._actions:
            if action.help is None:
                key = action.option_strings[-1] if action.option_strings else action.dest
                action.help = _PLAIN_HELP.get(key, _PLAIN_HELP.get(action.dest))
