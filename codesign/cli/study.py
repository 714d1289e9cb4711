"""The ``codesign`` commands on studies and their run directories.

``search``, ``resume`` and ``worker`` run a study (:mod:`codesign.search.pool`); ``export``
and ``doctor`` rebuild or mend a run. Each parses nothing (see
:mod:`codesign.cli`), calls the library and prints (:mod:`codesign.cli.format`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import zlib
from pathlib import Path
from typing import Any

from codesign.cli.format import PROG, _print_summary
from codesign.errors import ConfigError


def _run(exp: Any, run: Any, trials: int | None, workers: int, progress: bool,
         as_json: bool, first_worker: int = 0, warm_start: Any = ()) -> int:
    from codesign.search.pool import remaining_trials, run_workers
    from codesign.search.samplers import check_sampler

    n = trials if trials is not None else remaining_trials(exp, run)
    if n <= 0:
        print(f"study {run.study_name}: the budget of {exp.trials} trials is reached; "
              f"pass --trials N to run more. Front: codesign pareto {run.run_dir}")
        return 0
    check_sampler(exp, run)  # a missing optional dependency: exit 2 before any file
    summary, failed = run_workers(exp, run, n, workers, progress, first_worker, warm_start)
    _print_summary(summary, as_json)
    if not as_json and summary.feasible:
        from codesign.results.recommend import search_headline

        try:
            print(search_headline(summary.run_dir))
        except ConfigError:  # the run is read back (a database URL given on the command
            pass             # line only, not in the environment): the summary stands alone
    if failed:
        print(f"{PROG}: {failed} worker process(es) failed", file=sys.stderr)
        return 1
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from codesign.search.experiment import load_experiment
    from codesign.search.storage.rundir import prepare_run
    from codesign.search.warm_start import warm_start_params

    exp = load_experiment(args.experiment)
    # read before the run exists: a bad --warm-start touches nothing
    warm = [d for other in args.warm_start or () for d in warm_start_params(exp, other)]
    run = prepare_run(exp, args.out, args.study, args.storage, args.sampler, args.seed,
                      args.allow_space_change)
    return _run(exp, run, args.trials, args.workers, not args.no_progress, args.json,
                warm_start=warm)


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
    from codesign.search.export import export_run

    rows, pareto = export_run(args.run_dir)
    print(f"{args.run_dir}: {rows} trials written to {Path(args.run_dir) / 'trials'}; "
          f"Pareto front: {pareto}")
    return 0




def cmd_compact(args: argparse.Namespace) -> int:
    from codesign.search.export import compact_run

    res = compact_run(args.run_dir)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{args.run_dir}: {res['files_before']} Parquet files -> {res['files_after']} "
          f"({res['rows']} rows; {res['sources']} files merged into {len(res['merged'])})"
          + (f"; {res['skipped']}" if res["skipped"] else "")
          + f"; log state recorded: {res['n_complete']} COMPLETE trials")
    return 0
