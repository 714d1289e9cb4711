"""``codesign export``: a run's whole Parquet log rebuilt from its storage (the truth);
``codesign compact``: its small files merged into larger ones."""

from __future__ import annotations

import os
import sys

import optuna
from optuna.trial import TrialState

from codesign.search import parquet_log
from codesign.search.storage.rundir import _writer_tag, load_run, open_storage, row_from_trial
from codesign.search.study import finalize
from codesign.search.workers import other_live_workers, preflight_journal, recovery_lock


def export_run(run_dir: str | os.PathLike[str]) -> tuple[int, str]:
    """Rebuild the whole Parquet log of a run from its storage (the truth): one trials file
    with every COMPLETE trial, replacing the log in one atomic swap (a reader sees the old log
    or the new one, never both; :func:`codesign.search.parquet_log.replace_trials`), and a fresh
    Pareto snapshot. Idempotent. An unreadable ``run.json`` is rebuilt first
    (:func:`codesign.search.storage.rundir.rebuild_run_file`, the bad file kept). Refused
    (ConfigError) while
    a search of the run is alive on this machine. Returns (rows written, pareto snapshot path).
    """
    from pathlib import Path

    from codesign.errors import ConfigError
    from codesign.search.storage.rundir import _writable, rebuild_run_file
    from codesign.search.storage.runfile import RunFileError

    try:
        exp, run = load_run(run_dir)
    except RunFileError:
        _writable(Path(run_dir))
        kept = rebuild_run_file(run_dir)
        print(f"{run_dir}: run.json rebuilt from experiment.toml and the journal"
              + (f" (the bad one kept as {kept})" if kept else ""), file=sys.stderr)
        exp, run = load_run(run_dir)
    _writable(run.run_dir)
    preflight_journal(run)
    with recovery_lock(run):  # no worker of this storage starts meanwhile
        live = other_live_workers(run)
        if live:
            raise ConfigError(run.run_dir, "<run directory>", "no search running on this run's "
                              "storage (export replaces the whole log; run it once they end)",
                              f"{live} live worker(s)")
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
        tag = f"export-{_writer_tag(0)}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        parquet_log.replace_trials(run.run_dir, exp,
                                   [row_from_trial(exp, t, tag) for t in complete], tag)
        summary = finalize(exp, run, 0, 0.0, tag, study)
    return len(complete), summary.pareto_path


def compact_run(run_dir: str | os.PathLike[str]) -> dict[str, object]:
    """Compact the Parquet log of a run (:func:`codesign.search.storage.compact.compact_log`:
    safe while searches append; waits for another compaction) and record its state
    (:func:`codesign.search.storage.log_state.record`: one read of the storage), so that
    ``pareto``, ``report`` and ``load_run`` read the log instead of replaying the journal.
    Returns what was done (files before and after, rows, merged files, the COMPLETE count)."""
    from dataclasses import asdict

    from codesign.search.storage import log_state
    from codesign.search.storage.compact import compact_log
    from codesign.search.storage.rundir import _writable

    exp, run = load_run(run_dir)
    _writable(run.run_dir)
    preflight_journal(run)
    res = asdict(compact_log(run.run_dir, exp))
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    state = log_state.record(exp, run, study, f"compact-{_writer_tag(0)}")
    return {**res, "n_complete": state["n_complete"]}
