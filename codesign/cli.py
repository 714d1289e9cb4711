"""The ``codesign`` command. Parses flags, calls the library, prints; holds no model logic.

Exit codes: 0 ok, 2 bad input (config, CSV, flags, storage URL; nothing is created or
touched), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError

PROG = "codesign"


# --------------------------------------------------------------------------- flag types


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
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
    """argparse that raises instead of exiting, so :func:`main` returns the exit code."""

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
    from codesign.config import SAMPLERS
    from codesign.specs import ATTENTION_IMPLS, PRECISIONS, RECOMPUTE_MODES, TOPOLOGIES

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
    e.add_argument("--n-chips", type=_int_at_least(1), default=None)
    e.add_argument("--power-budget-mw", type=_positive_float, default=None,
                   help="size the cluster by a facility power budget (MW) instead")
    e.add_argument("--power-limit-w", type=_positive_float, default=None,
                   help="run the chip under this power limit (W, its TDP): over it, the chip "
                        "lowers its clock (DVFS)")
    e.add_argument("--seq-len", type=_int_at_least(1), default=4096,
                   help="with a model id: sequence length (tokens)")
    e.add_argument("--global-batch", type=_int_at_least(1), default=1024,
                   help="with a model id: sequences per step")
    e.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="matmul (and, serving, weight) precision")
    e.add_argument("--input-len", type=_int_at_least(1),
                   help="with a model id: serve requests of this many prompt tokens")
    e.add_argument("--output-len", type=_positive_float, default=512.0,
                   help="serving: generated tokens per request")
    e.add_argument("--concurrency", type=_int_at_least(1),
                   help="serving: requests in flight (default: as many as fit)")
    e.add_argument("--kv-precision", choices=PRECISIONS, help="serving: KV-cache precision")
    e.add_argument("--ttft-slo-s", type=_positive_float, help="serving: TTFT limit, s")
    e.add_argument("--itl-slo-s", type=_positive_float, help="serving: ITL limit, s")
    e.add_argument("--attention", choices=ATTENTION_IMPLS, default="flash",
                   help="with a model id: fused (flash) or unfused attention kernels")
    e.add_argument("--scaleout-gbps", type=_positive_float, help="NIC Gbit/s per chip")
    e.add_argument("--topology", choices=TOPOLOGIES, default="fat-tree")
    e.add_argument("--oversubscription", type=_positive_float, default=1.0)
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
    e.add_argument("--json", action="store_true")

    dr = sub.add_parser("doctor", help="check a run's journal; --repair mends a torn one")
    dr.add_argument("target", help="run directory or journal file")
    dr.add_argument("--repair", action="store_true",
                    help="back the journal up, then cut a torn line / clear a stale lock")

    ex = sub.add_parser("export", help="rebuild a run's Parquet log from its storage")
    ex.add_argument("run_dir")

    cm = sub.add_parser("compare", help="best designs of a run next to a reference chip")
    cm.add_argument("run_dir")
    cm.add_argument("--against", required=True, help="catalog chip id, e.g. h100-sxm")
    cm.add_argument("--format", choices=("table", "json"), default="table")

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
                   "ML.ENERGY power rows; default 70, the mean LMSYS-Chat-1M prompt); "
                   "listed in each such row's assumed")
    v.add_argument("--hardware", action="store_true",
                   help="predicted vs published die area and TDP of the catalog chips "
                   "(instead of the LLM measurements)")

    b = sub.add_parser("bench", help="evaluator, mapping-search and search-loop throughput")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--quick", action="store_true", help="fewer search trials (300 instead of 2000)")
    b.add_argument("--search-trials", type=_int_at_least(1),
                   help="trials of the search-loop benchmark (overrides --quick)")
    return p


# --------------------------------------------------------------------------- commands


def _print_summary(summary: Any, as_json: bool) -> None:
    from codesign.study import summary_dict

    if as_json:
        print(json.dumps(summary_dict(summary)))
        return
    rate = summary.trials_run / summary.seconds if summary.seconds > 0 else 0.0
    print(f"study {summary.study_name}: {summary.trials_run} trials run in "
          f"{summary.seconds:.1f} s ({rate:.1f}/s); {summary.trials_total_complete} complete, "
          f"{summary.feasible} feasible")
    print(f"Pareto front: {summary.pareto_size} designs -> {summary.pareto_path}")
    print(f"all trials (Parquet): {summary.trials_path}")
    print(f"show the front: codesign pareto {summary.run_dir}")


def _remaining(exp: Any, run: Any) -> int:
    import optuna
    from optuna.trial import TrialState

    from codesign.study import JOURNAL_FILE, open_storage

    if run.storage_url is None and not (run.run_dir / JOURNAL_FILE).exists():
        return exp.trials
    storage = open_storage(run)
    try:
        study = optuna.load_study(study_name=run.study_name, storage=storage)
    except KeyError:
        return exp.trials
    return exp.trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _run(exp: Any, run: Any, trials: int | None, workers: int, progress: bool,
         as_json: bool, first_worker: int = 0) -> int:
    from codesign import study as st

    n = trials if trials is not None else _remaining(exp, run)
    if n <= 0:
        print(f"study {run.study_name}: the budget of {exp.trials} trials is reached; "
              f"pass --trials N to run more. Front: codesign pareto {run.run_dir}")
        return 0
    st.write_run_files(exp, run)
    procs = []
    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    for i in range(1, workers):
        if shares[i]:
            proc = ctx.Process(target=_worker_process,
                               args=(str(run.run_dir), shares[i], first_worker + i))
            proc.start()
            procs.append(proc)
    t0 = time.perf_counter()
    summary = st.run_search(exp, run, shares[0], progress=progress, worker=first_worker)
    failed = 0
    for proc in procs:
        proc.join()
        failed += proc.exitcode != 0
    if procs:  # a snapshot and summary that count every worker's trials
        summary = st.finalize(exp, run, n, time.perf_counter() - t0, "all")
    _print_summary(summary, as_json)
    if failed:
        print(f"{PROG}: {failed} worker process(es) failed", file=sys.stderr)
        return 1
    return 0


def _worker_process(run_dir: str, n_trials: int, worker: int) -> None:
    from codesign.study import load_run, run_search

    exp, run = load_run(run_dir)
    run_search(exp, run, n_trials, progress=False, worker=worker)


def cmd_search(args: argparse.Namespace) -> int:
    from codesign.config import load_experiment
    from codesign.study import prepare_run

    exp = load_experiment(args.experiment)
    run = prepare_run(exp, args.out, args.study, args.storage, args.sampler, args.seed,
                      args.allow_space_change)
    return _run(exp, run, args.trials, args.workers, not args.no_progress, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from codesign.study import load_run

    exp, run = load_run(args.run_dir)
    return _run(exp, run, args.trials, 1, not args.no_progress, args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    from codesign.config import load_experiment
    from codesign.study import prepare_run

    exp = load_experiment(args.experiment)
    run = prepare_run(exp, args.out, args.study, args.storage)
    # a worker index unique to this host and process: joining workers never share a seed
    worker = zlib.crc32(f"{socket.gethostname()}-{os.getpid()}".encode())
    return _run(exp, run, args.trials, 1, not args.no_progress, args.json, worker)


def cmd_pareto(args: argparse.Namespace) -> int:
    import optuna

    from codesign.study import load_run, open_storage, pareto_rows

    exp, run = load_run(args.run_dir)
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    rows = pareto_rows(exp, study)
    cols = ["trial", *[f"value_{o.metric}" for o in exp.objectives],
            *[f"param_{p.name}" for p in exp.space.params],
            "n_chips", "tdp_w", "chip_power_w", "mfu", "map_tp", "map_pp", "map_dp",
            "map_micro_batch", "map_recompute", "map_zero"]
    cols = [c for c in dict.fromkeys(cols) if f"value_{c}" not in cols]  # no column twice
    first = exp.objectives[0].metric  # improvement over each baseline, first objective
    cols += sorted({k for r in rows for k in r if k.startswith(f"{first}_vs_")})
    if args.format == "json":
        print(json.dumps({"study": run.study_name,
                          "objectives": [[o.metric, o.direction] for o in exp.objectives],
                          "front": rows}, default=str))
        return 0
    import pandas as pd

    df = pd.DataFrame(rows, columns=cols)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    _print_front(run.study_name, exp, rows)
    return 0


def _print_front(study_name: str, exp: Any, rows: list[dict[str, Any]]) -> None:
    """The front as a rich terminal table: objectives (with units), searched parameters, the
    best mapping, chip power, and each design's improvement over every baseline chip."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from codesign.metrics import METRICS
    from codesign.specs import mapping_short

    objs = [o.metric for o in exp.objectives]
    arrows = {"maximize": "↑", "minimize": "↓"}
    table = Table(box=box.SIMPLE_HEAD, title=(
        f"{study_name}: {len(rows)} Pareto-optimal feasible designs "
        f"({', '.join(f'{o.direction} {o.metric}' for o in exp.objectives)})"),
        title_justify="left")
    table.add_column("trial", justify="right")
    for o in exp.objectives:
        unit = METRICS.get(o.metric, ("", ""))[0]
        table.add_column(f"{o.metric} {arrows[o.direction]}\n{unit}", justify="right",
                         style="bold")
    params = [p.name for p in exp.space.params]
    for name in params:
        table.add_column(name, justify="right")
    extra = [k for k in ("tdp_w", "chip_power_w", "n_chips") if k not in objs]
    for k in extra:
        table.add_column(k, justify="right")
    table.add_column("best mapping")
    vs = sorted({k for r in rows for k in r if "_vs_" in k})
    for k in vs:
        metric, chip = k.split("_vs_")
        table.add_column(f"vs {chip}\n{metric}", justify="right")
    for r in rows:
        mapping = {k.removeprefix("map_"): r.get(k) for k in r if k.startswith("map_")}
        table.add_row(
            str(r["trial"]), *(_fmt(r.get(f"value_{o}")) for o in objs),
            *(_fmt(r.get(f"param_{p}")) for p in params), *(_fmt(r.get(k)) for k in extra),
            mapping_short(mapping) if mapping.get("tp") else "",
            *("" if r.get(k) is None else f"{r[k]:.2f}x" for k in vs))
    note = "improvement: > 1 = better than the baseline chip on that objective" if vs else ""
    if sys.stdout.isatty():
        console = Console(highlight=False)
        console.print(table)
        if note:
            console.print(note)
        return
    buf = io.StringIO()  # piped: no colour, no wrapping, no trailing blanks
    Console(file=buf, width=100_000, highlight=False, color_system=None).print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
    if note:
        print(note)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from codesign import catalog
    from codesign.config import load_design, load_workload
    from codesign.design import design_to_chip
    from codesign.pack import UnknownSpecError
    from codesign.perf import evaluate, result_metrics, sized_cluster
    from codesign.specs import ClusterSpec, InferJob, InferResult, Mapping, TrainJob

    assumed: dict[str, Any] = {}
    if args.chip.endswith(".toml"):
        chip = design_to_chip(load_design(args.chip), name=Path(args.chip).stem)
    elif args.chip in catalog.chip_ids():
        from codesign.catalog.assume import explain_unknowns

        chip, why = explain_unknowns(catalog.get_chip(args.chip))
        assumed = {f"chip.{k}": {"value": a.value, "reason": a.reason} for k, a in why.items()}
    else:
        raise ConfigError(None, "--chip",
                          f"a design TOML or one of: {', '.join(catalog.chip_ids())}", args.chip)
    if args.power_limit_w is not None:
        from dataclasses import replace

        chip = replace(chip, tdp_w=args.power_limit_w, throttles=True)
    if args.workload.endswith(".toml"):
        job = load_workload(args.workload)
    elif args.workload in catalog.model_ids() and args.input_len is not None:
        job = InferJob(catalog.get_model(args.workload), args.input_len,
                       args.output_len, args.concurrency, args.precision, args.kv_precision,
                       args.ttft_slo_s, args.itl_slo_s)
    elif args.workload in catalog.model_ids():
        job = TrainJob(catalog.get_model(args.workload), args.seq_len, args.global_batch,
                       args.precision, args.attention)
    else:
        raise ConfigError(None, "--workload",
                          f"a workload TOML or one of: {', '.join(catalog.model_ids())}",
                          args.workload)
    if args.n_chips is not None and args.power_budget_mw is not None:
        raise ConfigError(None, "--power-budget-mw", "either --n-chips or --power-budget-mw",
                          f"both (--n-chips {args.n_chips})")
    n_chips = args.n_chips or (chip.scaleup_domain or 8)
    cluster = ClusterSpec(n_chips=n_chips, topology=args.topology,
                          oversubscription=max(1.0, args.oversubscription),
                          power_budget_mw=args.power_budget_mw)
    mapping = Mapping(tp=args.tp or 0, pp=args.pp or 0, dp=args.dp or 0, cp=args.cp or 0,
                      ep=args.ep or 0, vpp=args.vpp or 0, micro_batch=args.micro_batch or 0,
                      recompute=args.recompute, zero=args.zero,
                      sequence_parallel=None if args.sequence_parallel is None
                      else bool(args.sequence_parallel),
                      ep_overlap=None if args.ep_overlap is None else bool(args.ep_overlap),
                      hybrid_shard=None if args.hybrid_shard is None
                      else bool(args.hybrid_shard))
    try:
        res = evaluate(chip, cluster, job, mapping, scaleout_gbps=args.scaleout_gbps)
    except UnknownSpecError as exc:
        raise ConfigError(None, "--chip", "a chip with every number the model needs",
                          str(exc)) from None
    cluster = sized_cluster(chip, cluster, args.scaleout_gbps)
    m = result_metrics(chip, cluster, res, job, scaleout_gbps=args.scaleout_gbps)
    serving = isinstance(res, InferResult)
    out = {
        "chip": chip.id or chip.name,
        "die_area_mm2": chip.die_area_mm2,
        "n_compute_dies": chip.n_compute_dies,
        "tdp_w": chip.tdp_w,
        "chip_cost_usd": m["chip_cost_usd"],
        "n_chips": cluster.n_chips,
        "model": job.model.name,
        "workload": "infer" if serving else "train",
        "mapping": res.mapping.as_dict(),
    }
    if serving:
        out.update({
            "ttft_s": res.ttft_s,
            "itl_s": res.itl_s,
            "prefill_s": res.prefill_s,
            "decode_step_s": res.decode_step_s,
            "decode_flops_per_byte": res.decode_flops_per_byte,
        })
    else:
        out.update({"step_time_s": res.step_time_s, "mfu": res.mfu})
    out.update({
        "tokens_per_s": res.tokens_per_s,
        "tokens_per_s_per_chip": res.tokens_per_s_per_chip,
        "memory_gb_per_chip": res.memory_gb_per_chip,
        "memory_gb": res.memory_gb,
        "chip_power_w": res.chip_power_w,
        "cluster_power_w": res.cluster_power_w,
        "tokens_per_joule": res.tokens_per_joule,
        "cost_per_mtoken_usd": m["cost_per_mtoken_usd"],
        "tokens_per_s_per_mw": m["tokens_per_s_per_mw"],
        "energy_per_token_j": m["energy_per_token_j"],
        "feasible": res.feasible,
        "reason": res.reason,
        "candidates": res.n_candidates,
        "feasible_candidates": res.n_feasible,
    })
    if not serving:
        out["breakdown_s"] = res.breakdown_s
    out["power_breakdown_w"] = res.power_w
    out["clock_fraction"] = res.clock_fraction
    out["assumed"] = assumed
    if args.json:
        print(json.dumps(_strict_json(out), allow_nan=False))
        return 0
    for key, value in out.items():
        print(f"{key:>22}: {value}")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from codesign import catalog

    chips = [asdict(c) for c in catalog.chips()]
    models = {k: {**asdict(m), "params_total": m.params_total(),
                  "params_active": m.params_active()} for k, m in catalog.models().items()}
    if args.json:
        print(json.dumps({"chips": chips, "models": models}))
        return 0
    import pandas as pd

    cols = ["id", "vendor", "year", "process_nm", "tflops_bf16", "tflops_fp8", "sram_mb",
            "hbm_gen", "hbm_stacks", "hbm_gb", "hbm_tbps", "scaleup_gbps", "scaleup_domain",
            "scaleout_gbps", "tdp_w"]
    print(f"{len(chips)} reference chips (empty = unknown in the source data)")
    table = pd.DataFrame(chips, columns=cols)
    for col in ("year", "hbm_stacks", "scaleup_domain"):
        table[col] = table[col].astype("Int64")
    print(table.to_string(index=False, na_rep=""))
    print(f"\n{len(models)} reference models")
    mcols = ["name", "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab",
             "moe_experts", "moe_topk"]
    df = pd.DataFrame.from_dict(models, orient="index")
    df["params_b"] = (df["params_total"] / 1e9).round(1)
    df["active_b"] = (df["params_active"] / 1e9).round(1)
    print(df[[*mcols, "params_b", "active_b"]].to_string())
    return 0




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


def _validate_hardware(args: argparse.Namespace) -> int:
    from codesign.hardware import GATE_CHIPS, gate_summary, hardware_table

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


def cmd_validate(args: argparse.Namespace) -> int:
    from codesign.specs import mapping_short

    if args.hardware:
        return _validate_hardware(args)
    from codesign.validate import (
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


def cmd_bench(args: argparse.Namespace) -> int:
    from codesign.bench import format_text, run_bench

    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    doc = run_bench(quick=args.quick, search_trials=args.search_trials, log=log)
    if args.json:
        print(json.dumps(_strict_json(doc), allow_nan=False))
        return 0
    print(format_text(doc))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from codesign import doctor

    target = Path(args.target)
    if not target.exists():
        raise ConfigError(None, "target", "a run directory or a journal file", str(target))
    health = doctor.preflight(target)
    print(health.message)
    if args.repair and not health.ok:
        try:
            backup = (doctor.repair_run(target) if target.is_dir()
                      else doctor.repair_journal(target))
        except RuntimeError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        if backup:
            print(f"backup: {backup}")
        health = doctor.preflight(target)
        print(health.message)
    return 0 if health.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from codesign.study import export_run

    rows, pareto = export_run(args.run_dir)
    print(f"{args.run_dir}: {rows} trials written to {Path(args.run_dir) / 'trials'}; "
          f"Pareto front: {pareto}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from codesign.report import write_report

    path = write_report(args.run_dir, args.out, args.design, args.against)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from codesign.compare import compare_run

    doc = compare_run(args.run_dir, args.against)
    if args.format == "json":
        print(json.dumps(_strict_json(doc), allow_nan=False))
        return 0
    base = doc["baseline"]
    print(f"{doc['study']}: best design per objective vs {base['id']} "
          f"(same workload and cluster; improvement > 1 = better)")
    if not base["feasible"]:
        print(f"  {base['id']} is infeasible here: {base['reason']}")
    for b in doc["best"]:
        print(f"\nbest {b['objective']} ({b['direction']}): trial {b['trial']}")
        rows = [(k, base["metrics"].get(k), b["metrics"].get(k), b["improvement"].get(k, ""))
                for k in b["metrics"]]
        rows += [(k, base["spec"].get(k), b["spec"].get(k), "") for k in b["spec"]
                 if k not in b["metrics"]]
        width = max(len(r[0]) for r in rows)
        print(f"  {'':<{width}}  {base['id']:>14}  {'design':>14}  improvement")
        for k, ref, new, imp in rows:
            print(f"  {k:<{width}}  {_fmt(ref):>14}  {_fmt(new):>14}  {_fmt(imp)}")
        changes = ", ".join(f"{k} {_fmt(a)} -> {_fmt(v)}" for k, (a, v) in b["changed"].items())
        print(f"  changed vs {base['id']} as a design point: {changes or 'nothing'}")
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


COMMANDS = {
    "search": cmd_search,
    "resume": cmd_resume,
    "worker": cmd_worker,
    "pareto": cmd_pareto,
    "evaluate": cmd_evaluate,
    "catalog": cmd_catalog,
    "compare": cmd_compare,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "export": cmd_export,
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
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except BrokenPipeError:
        return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
