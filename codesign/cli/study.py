"""The ``codesign`` commands on studies and their run directories.

``search``, ``resume`` and ``worker`` run a study; ``pareto``, ``compare``, ``report``,
``export`` and ``doctor`` look at, rebuild or mend a run. Each parses nothing (see
:mod:`codesign.cli`), calls the library and prints (:mod:`codesign.cli.format`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from codesign.cli.format import PROG, _fmt, _print_front, _print_summary, _strict_json
from codesign.errors import ConfigError


def _remaining(exp: Any, run: Any) -> int:
    import optuna
    from optuna.trial import TrialState

    from codesign.search.journal.check import JOURNAL_FILE
    from codesign.search.storage.rundir import open_storage

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
    from codesign.search import study as st
    from codesign.search.storage.rundir import write_run_files

    n = trials if trials is not None else _remaining(exp, run)
    if n <= 0:
        print(f"study {run.study_name}: the budget of {exp.trials} trials is reached; "
              f"pass --trials N to run more. Front: codesign pareto {run.run_dir}")
        return 0
    st.check_sampler(exp, run)  # a missing optional dependency: exit 2 before any file
    before = st.trials_so_far(run) if workers > 1 else 0
    write_run_files(exp, run)
    procs = []
    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    for i in range(1, workers):
        if shares[i]:
            proc = ctx.Process(target=_worker_process,
                               args=(str(run.run_dir), shares[i], first_worker + i,
                                     run.storage_url))
            proc.start()
            procs.append(proc)
    t0 = time.perf_counter()
    summary = st.run_search(exp, run, shares[0], progress=progress, worker=first_worker)
    failed = 0
    for proc in procs:
        proc.join()
        failed += proc.exitcode != 0
    if procs:  # a snapshot and summary that count every worker's trials
        summary = st.finalize(exp, run, n, time.perf_counter() - t0, "all",
                              repeats=st.repeats_since(run, before))
    _print_summary(summary, as_json)
    if failed:
        print(f"{PROG}: {failed} worker process(es) failed", file=sys.stderr)
        return 1
    return 0


def _worker_process(run_dir: str, n_trials: int, worker: int, storage: str | None) -> None:
    from codesign.search.storage.rundir import load_run
    from codesign.search.study import run_search

    exp, run = load_run(run_dir, storage)  # the URL with its password: not in run.json
    run_search(exp, run, n_trials, progress=False, worker=worker)


def cmd_search(args: argparse.Namespace) -> int:
    from codesign.search.experiment import load_experiment
    from codesign.search.storage.rundir import prepare_run

    exp = load_experiment(args.experiment)
    run = prepare_run(exp, args.out, args.study, args.storage, args.sampler, args.seed,
                      args.allow_space_change)
    return _run(exp, run, args.trials, args.workers, not args.no_progress, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from codesign.search.storage.rundir import load_run

    exp, run = load_run(args.run_dir)
    return _run(exp, run, args.trials, 1, not args.no_progress, args.json)


def cmd_worker(args: argparse.Namespace) -> int:
    from codesign.search.experiment import load_experiment
    from codesign.search.storage.rundir import prepare_run

    exp = load_experiment(args.experiment)
    run = prepare_run(exp, args.out, args.study, args.storage)
    # a worker index unique to this host and process: joining workers never share a seed
    worker = zlib.crc32(f"{socket.gethostname()}-{os.getpid()}".encode())
    return _run(exp, run, args.trials, 1, not args.no_progress, args.json, worker)


def cmd_pareto(args: argparse.Namespace) -> int:
    import optuna

    from codesign.results.compare import BASELINE_MEANING, baseline_label, projection
    from codesign.search.parquet_log import schema
    from codesign.search.storage.rundir import load_run, open_storage
    from codesign.search.study import pareto_rows

    exp, run = load_run(args.run_dir)
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    rows = pareto_rows(exp, study)
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
    for chip in chips:
        proj = projection(exp, chip, study)
        changes = None if proj is None else proj["changes"]
        refs.append({"id": chip, "meaning": BASELINE_MEANING,
                     "trial": None if proj is None else proj["trial"],
                     "projection_changes": changes or {},
                     "label": baseline_label(chip, changes)})
    if args.format == "json":
        print(json.dumps(_strict_json({
            "study": run.study_name,
            "objectives": [[o.metric, o.direction] for o in exp.objectives],
            "columns": cols,
            "baselines": refs,
            "front": [{c: r.get(c) for c in cols} for r in rows]}),
            default=str, allow_nan=False))
        return 0
    import pandas as pd

    df = pd.DataFrame(rows, columns=cols)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    _print_front(run.study_name, exp, rows, [r["label"] for r in refs])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from codesign.search.journal import doctor

    target = Path(args.target)
    if not target.exists():
        raise ConfigError(None, "target", "a run directory or a journal file", str(target))
    if (args.restore_backup or args.truncate) and not args.repair:
        raise ConfigError(None, "--restore-backup/--truncate", "--repair with it", "no --repair")
    ok = _doctor_report(target)
    if not args.repair or ok:
        return 0 if ok else 1
    journal = doctor.journal_path(target)
    try:
        if journal is not None and args.restore_backup:
            restored, kept = doctor.restore_backup(journal)
            print(f"restored {restored} as {journal}; the replaced journal is kept as {kept}")
        if journal is not None:
            done = doctor.mend_journal(journal, truncate=args.truncate)
            for action in done.actions:
                print(f"repaired {action}")
            if done.backup:
                print(f"backup: {done.backup}")
    except RuntimeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if (target / "run.json").is_file():
        from codesign.search.journal.log_check import level_log, log_gaps

        health = doctor.preflight(target)
        if health.unverified and not health.damaged and log_gaps(target).differing:
            print(f"{PROG}: Parquet rows differ from journal lines that carry no checksum: "
                  "which one is right cannot be told, so the log was not levelled; compare "
                  "the trials named above with a backup of the journal", file=sys.stderr)
            return 1

        try:
            before, _ = level_log(target)
        except ConfigError as exc:  # the journal still does not load: say so, change nothing
            print(f"{PROG}: the Parquet log was not levelled: {exc}", file=sys.stderr)
            return 1
        if not before.level:
            print(f"levelled the Parquet log: {before.message(target)}")
    return 0 if _doctor_report(target) else 1


def _doctor_report(target: Path) -> bool:
    """Print what ``doctor`` finds in a run directory or journal; True if all is healthy."""
    from codesign.search.journal import doctor

    health = doctor.preflight(target)
    print(health.message)
    ok = health.ok
    journal = doctor.journal_path(target)
    if journal is not None and not health.damaged:
        nums, msg = doctor.replay_check(journal)
        if nums:
            print(msg)
            ok = False
    if ok and (target / "run.json").is_file():
        from codesign.search.journal.log_check import log_gaps

        gaps = log_gaps(target)
        print(gaps.message(target))
        ok = not gaps.contradicts
    return ok


def cmd_export(args: argparse.Namespace) -> int:
    from codesign.search.study import export_run

    rows, pareto = export_run(args.run_dir)
    print(f"{args.run_dir}: {rows} trials written to {Path(args.run_dir) / 'trials'}; "
          f"Pareto front: {pareto}")
    return 0


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
    base = doc["baseline"]
    print(f"{doc['study']}: best design per objective vs {base['id']} "
          f"(same workload and cluster; improvement > 1 = better)")
    print(f"  vs {base['label']}")
    if not base["feasible"]:
        print(f"  {base['id']} is infeasible here: {base['reason']}")
    cat = base["catalog"]
    if base["meaning"] == "projected":
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in cat["metrics"].items()
                          if k in {b["objective"] for b in doc["best"]})
        print(f"  (the catalog {base['id']} itself, not projected: "
              + (shown if cat["feasible"] else f"infeasible: {cat['reason']}") + ")")
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
