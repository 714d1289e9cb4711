"""A search run by K processes on one machine: the budget left, the shares, the spawned
workers, one summary that counts them all."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from codesign.search import study as st
from codesign.search.experiment import Experiment
from codesign.search.journal.check import JOURNAL_FILE
from codesign.search.storage.rundir import RunSpec, load_run, open_storage, write_run_files


def remaining_trials(exp: Experiment, run: RunSpec) -> int:
    """Trials left of the experiment's budget: its ``trials`` less the study's COMPLETE ones
    (the whole budget when the study does not exist yet)."""
    if run.storage_url is None and not (run.run_dir / JOURNAL_FILE).exists():
        return exp.trials
    storage = open_storage(run)
    try:
        study = optuna.load_study(study_name=run.study_name, storage=storage)
    except KeyError:
        return exp.trials
    return exp.trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_workers(exp: Experiment, run: RunSpec, n: int, workers: int, progress: bool,
                first_worker: int = 0, warm_start: Sequence[tuple[dict[str, Any], str]] = ()
                ) -> tuple[st.SearchSummary, int]:
    """Run ``n`` trials shared by ``workers`` processes (this one and ``workers - 1`` spawned,
    worker indices from ``first_worker``). Returns the summary (of all of them when there
    are several) and how many spawned processes failed. ``warm_start``: designs this
    process queues first (:func:`codesign.search.warm_start.warm_start_params`)."""
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
    summary = st.run_search(exp, run, shares[0], progress=progress, worker=first_worker,
                            warm_start=warm_start)
    failed = 0
    for proc in procs:
        proc.join()
        failed += proc.exitcode != 0
    if procs:  # a snapshot and summary that count every worker's trials
        summary = st.finalize(exp, run, n, time.perf_counter() - t0, "all",
                              repeats=st.repeats_since(run, before))
    return summary, failed


def _worker_process(run_dir: str, n_trials: int, worker: int, storage: str | None) -> None:
    exp, run = load_run(run_dir, storage)  # the URL with its password: not in run.json
    st.run_search(exp, run, n_trials, progress=False, worker=worker)
