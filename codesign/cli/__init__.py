"""The ``codesign`` command. Parses flags, calls the library, prints; holds no model logic.

The flags and the dispatch are here; the commands, one module per group:
:mod:`codesign.cli.model` (``evaluate``, ``catalog``, ``bench``), :mod:`codesign.cli.validate`
(``validate``), :mod:`codesign.cli.study` (``search``, ``resume``, ``worker``, ``doctor``,
``export``) and :mod:`codesign.cli.results` (``pareto``, ``report``, ``compare``,
``extend``); what they
print in :mod:`codesign.cli.format`.

Exit codes: 0 ok, 2 bad input (config, CSV, flags, storage URL; nothing is created or
touched), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import math
import re
import sys
from typing import Any

from codesign.cli.format import PROG
from codesign.cli.model import cmd_bench, cmd_catalog, cmd_evaluate
from codesign.cli.results import cmd_compare, cmd_extend, cmd_pareto, cmd_report
from codesign.cli.study import (
    cmd_compact,
    cmd_doctor,
    cmd_export,
    cmd_resume,
    cmd_search,
    cmd_worker,
)
from codesign.cli.validate import cmd_validate
from codesign.errors import ConfigError
from codesign.model.traffic import ASSUMED_INPUT_LEN

# --------------------------------------------------------------------------- flag types


def _int_at_least(low: int, high: int | None = None):
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so :func:`main` returns the exit code, and
    takes flags only as spelled (no abbreviations: ``--chips`` is unknown, not a guess
    between ``--chips-per-host`` and ``--chips-per-rack``; a flag added later never breaks a
    script that abbreviated another)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        found = re.fullmatch(r"argument ([^:]+): (?:expected (.*), got (.*)|(.*))", message)
        if found is None:
            raise ConfigError(None, self.prog, "valid flags (see --help)", message)
        flag, expected, got, other = found.groups()
        if expected is None:
            choice = re.fullmatch(r"invalid choice: (.*) \(choose from (.*)\)", other)
            if choice is not None:
                got, expected = choice.group(1), f"one of: {choice.group(2)}"
            else:
                got, expected = other, "a valid value (see --help)"
        raise ConfigError(None, flag.split("/")[-1], expected, got.strip("'"))


def _parser() -> argparse.ArgumentParser:
    from codesign.model.specs import (
        ATTENTION_IMPLS,
        OFFLOAD_MODES,
        PRECISIONS,
        RECOMPUTE_MODES,
        TOPOLOGIES,
    )
    from codesign.search.design import DESIGN_PARAMETERS
    from codesign.search.experiment import MAX_BATCH, MAX_TOKENS, SAMPLERS

    p = _Parser(prog=PROG, description="Co-design search for AI datacenter chips and clusters.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    pa.add_argument("--format", choices=("table", "csv", "json"), default="table")
    pa.add_argument("--uncertainty", nargs="?", const=256, default=None, type=_int_at_least(1),
                    metavar="N", help="bands of every front design's objectives and the "
                    "probability it beats each baseline, from N paired draws (default 256)")
    pa.add_argument("--against", action="append", metavar="CHIP",
                    help="with --uncertainty: also the probability of beating this catalog "
                    "chip as projected into the search space (repeatable; default: the "
                    "experiment's baselines)")

    rp = sub.add_parser("report", help="one self-contained HTML report of a run (plots)")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--out", help="HTML file to write (default: RUN_DIR/report.html)")
    rp.add_argument("--design", type=_int_at_least(0), metavar="TRIAL",
                    help="trial of the sensitivity chart (default: the best design of each "
                    "objective, with a picker)")
    rp.add_argument("--against", action="append", metavar="CHIP",
                    help="reference chip id (repeatable; default: the experiment's baselines, "
                    "else h100-sxm)")

    e = sub.add_parser("evaluate", help="predict one chip + cluster on one workload")
    e.add_argument("--chip", required=True, help="catalog chip id or design TOML ([design])")
    e.add_argument("--workload", required=True,
                   help="catalog model id or workload TOML ([workload])")
    n_info, over = DESIGN_PARAMETERS["n_chips"], DESIGN_PARAMETERS["oversubscription"]
    e.add_argument("--n-chips", type=_int_at_least(1, n_info.high), default=None)
    e.add_argument("--power-budget-mw", type=_positive_float, default=None,
                   help="size the cluster by a facility power budget (MW) instead")
    e.add_argument("--site-mw", type=_positive_float, default=None,
                   help="with --power-budget-mw: split the budget over sites of this size "
                        "(MW; whole sites, a job never spans two)")
    e.add_argument("--job-chips", type=_int_at_least(1, n_info.high), default=None,
                   help="chips one job uses: the cluster (each site) runs as many identical "
                        "jobs as fit, the rest idle (default: one job on all)")
    e.add_argument("--power-limit-w", type=_positive_float, default=None,
                   help="run the chip under this power limit (W, its TDP): over it, the chip "
                        "lowers its clock (DVFS)")
    e.add_argument("--seq-len", type=_int_at_least(1, MAX_TOKENS),
                   help="with a model id, training: sequence length (tokens; default 4096)")
    e.add_argument("--global-batch", type=_int_at_least(1, MAX_BATCH),
                   help="with a model id, training: sequences per step (default 1024)")
    e.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="matmul (and, serving, weight) precision")
    e.add_argument("--input-len", type=_int_at_least(1, MAX_TOKENS),
                   help="with a model id: serve requests of this many prompt tokens")
    e.add_argument("--output-len", type=_float_in(1.0, MAX_TOKENS),
                   help="serving: generated tokens per request (default 512)")
    e.add_argument("--concurrency", type=_int_at_least(1, MAX_BATCH),
                   help="serving: requests in flight (default: as many as fit)")
    e.add_argument("--kv-precision", choices=PRECISIONS, help="serving: KV-cache precision")
    e.add_argument("--ttft-slo-s", type=_positive_float, help="serving: TTFT limit, s")
    e.add_argument("--itl-slo-s", type=_positive_float, help="serving: ITL limit, s")
    e.add_argument("--attention", choices=ATTENTION_IMPLS, default="flash",
                   help="with a model id: fused (flash) or unfused attention kernels")
    e.add_argument("--scaleout-gbps", type=_positive_float, help="NIC Gbit/s per chip")
    e.add_argument("--topology", choices=TOPOLOGIES, default=None,
                   help="scale-out topology (default: the catalog chip's platform's, else "
                        "fat-tree)")
    e.add_argument("--no-platform", action="store_true",
                   help="a catalog chip in the generic cluster (fat-tree, its NIC, a generic "
                        "110 W / 3,000 USD host per chip) instead of its platform as built")
    e.add_argument("--host-cpu", help="host CPU id of hosts.csv (default: the platform's)")
    e.add_argument("--chips-per-host", type=_int_at_least(1, 64))
    e.add_argument("--scaleup-fabric", choices=("switched", "ethernet", "direct"),
                   help="how the scale-up domain is wired (default: the platform's)")
    e.add_argument("--chips-per-rack", type=_int_at_least(1, 1024))
    e.add_argument("--cooling", choices=("air", "liquid"),
                   help="rack cooling, which bounds rack kW and chip TDP (default: the "
                        "platform's; else none stated, no limit)")
    e.add_argument("--scaleout-ports", type=_int_at_least(0, 256),
                   help="shared-port chips (Maia 100, Gaudi 3): ports facing scale-out")
    e.add_argument("--oversubscription", type=_float_in(over.low, over.high), default=1.0,
                   help="scale-out bandwidth oversubscription (1 = non-blocking)")
    for flag in ("tp", "pp", "dp", "cp", "ep", "vpp"):
        e.add_argument(f"--{flag}", type=_int_at_least(1))
    e.add_argument("--micro-batch", type=_int_at_least(1))
    e.add_argument("--recompute", choices=RECOMPUTE_MODES)
    e.add_argument("--zero", type=int, choices=(0, 1, 2, 3))
    e.add_argument("--sequence-parallel", type=int, choices=(0, 1))
    e.add_argument("--ep-overlap", type=int, choices=(0, 1),
                   help="MoE: run the expert-parallel all-to-all under another micro-batch's "
                   "compute (1) or not (0); searched when unset")
    e.add_argument("--hybrid-shard", type=int, choices=(0, 1),
                   help="ZeRO-3: shard within the scale-up domain, replicate across (1), or "
                   "over the whole data-parallel group (0); searched when unset")
    e.add_argument("--offload", choices=OFFLOAD_MODES,
                   help="training: model states kept in host memory (optimizer: Adam on the "
                   "host CPU; weights: streamed a layer at a time); searched when unset, used "
                   "only where HBM does not hold the mapping")
    e.add_argument("--host-memory-gb", type=_positive_float,
                   help="host DRAM per chip, GB (default: the platform's)")
    e.add_argument("--host-link-gbs", type=_positive_float,
                   help="GB/s per direction between a chip and host memory (default: the "
                   "platform's: PCIe or NVLink-C2C)")
    tg = e.add_argument_group(
        "serving under traffic", "any of these adds serving_traffic: the best deployment's "
        "goodput and P50/P90/P99 TTFT and ITL (limits: --ttft-slo-s, --itl-slo-s)")
    tg.add_argument("--rate-rps", type=_positive_float,
                    help="offered requests/s (default: report the goodput)")
    tg.add_argument("--input-cv", type=_float_in(0.0, 10.0),
                    help="coefficient of variation of prompt length, lognormal (default 0)")
    tg.add_argument("--output-cv", type=_float_in(0.0, 10.0),
                    help="coefficient of variation of output length, lognormal (default 0)")
    tg.add_argument("--prefix-hit", type=_float_in(0.0, 0.99),
                    help="share of prompt tokens served from the prefix cache (default 0)")
    tg.add_argument("--spec-k", type=_int_at_least(0, 16),
                    help="speculative decoding: draft tokens per step (default 0: none)")
    tg.add_argument("--spec-accept", type=_float_in(0.0, 1.0),
                    help="speculative decoding: acceptance rate per draft token")
    tg.add_argument("--chunk", type=_int_at_least(0, MAX_TOKENS),
                    help="one pool: prefill tokens per step, 0 = whole prompts (default: searched)")
    tg.add_argument("--slo-percentile", type=_float_in(0.5, 0.9999),
                    help="percentile the latency limits apply to (default 0.99)")
    tg.add_argument("--disaggregated", action="store_true",
                    help="separate prefill and decode pools (split searched)")
    tg.add_argument("--prefill-chips", type=_int_at_least(1, n_info.high),
                    help="with --disaggregated: chips of the prefill pool")
    tg.add_argument("--decode-chip", help="with --disaggregated: catalog chip of the decode "
                    "pool (default: --chip)")
    tg.add_argument("--kv-over-scaleup", action="store_true",
                    help="with --disaggregated: the KV cache moves over the scale-up network")
    e.add_argument("--uncertainty", nargs="?", const=256, default=None, type=_int_at_least(1),
                   metavar="N", help="P10/P50/P90 bands from N paired Monte Carlo draws of the "
                   "model's error and the estimated constants (default N: 256)")
    e.add_argument("--json", action="store_true")

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
    cm.add_argument("--against", required=True, help="catalog chip id, e.g. h100-sxm")
    cm.add_argument("--format", choices=("table", "json"), default="table")

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
    return p


_USER_OS_ERRORS = {
    errno.ENOSPC: "a disk with free space",
    errno.EDQUOT: "a disk quota with room left",
    errno.EACCES: "a path this user may write",
    errno.EPERM: "a path this user may write",
    errno.EROFS: "a writable file system",
}
"""Operating-system errors a user causes and mends (exit 2), with what was expected."""


COMMANDS = {
    "search": cmd_search,
    "resume": cmd_resume,
    "worker": cmd_worker,
    "pareto": cmd_pareto,
    "evaluate": cmd_evaluate,
    "catalog": cmd_catalog,
    "compare": cmd_compare,
    "extend": cmd_extend,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "export": cmd_export,
    "compact": cmd_compact,
    "validate": cmd_validate,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (``| head``): what it wanted, it has
        _quiet_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in _USER_OS_ERRORS:
            raise
        # a full disk or a path the user may not write, met where no earlier check could
        # see it (Optuna's own journal append, a read-only run directory): one line, exit 2
        err = ConfigError(exc.filename, "<write>", _USER_OS_ERRORS[exc.errno], exc.strerror)
        print(f"{PROG}: error: {err}; nothing stored is lost: mend it, then `codesign doctor "
              "RUN_DIR` checks the run and `codesign resume RUN_DIR` continues it",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a closed pipe at
    exit raises nothing either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture)
        pass


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
