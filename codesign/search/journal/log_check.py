"""Compare a run's Parquet trial log with its Optuna storage (the truth), and level it.

After a journal is repaired or a backup restored, the Parquet log can hold rows for trials
that are no longer COMPLETE in the storage, rows whose parameters or objective values differ
from it, or lack COMPLETE trials. :func:`log_gaps` finds each; :func:`level_log` rebuilds
the log from the storage (:func:`codesign.search.export.export_run`) when any is found. Used by
``codesign doctor`` (:mod:`codesign.cli.study`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pyarrow.parquet as pq
from optuna.trial import TrialState

from codesign.search.journal.check import _numbers


@dataclass(frozen=True)
class LogGaps:
    """How the Parquet trial log of a run differs from its storage (trial numbers).

    Attributes:
        extra: Rows for trials that are not COMPLETE in the storage.
        differing: Rows whose parameters or objective values differ from the storage.
        duplicates: Trials with more than one row.
        missing: COMPLETE trials with no row (the log is behind: a kill before the write).
        rows: Rows in the log.
    """

    extra: tuple[int, ...]
    differing: tuple[int, ...]
    duplicates: tuple[int, ...]
    missing: tuple[int, ...]
    rows: int

    @property
    def contradicts(self) -> bool:
        """True if the log holds rows the storage does not back (not merely behind)."""
        return bool(self.extra or self.differing or self.duplicates)

    @property
    def level(self) -> bool:
        """True if the log holds exactly the storage's COMPLETE trials."""
        return not (self.contradicts or self.missing)

    def message(self, run_dir: str | os.PathLike[str]) -> str:
        """One line for a human."""
        if self.level:
            return f"{Path(run_dir) / 'trials'}: {self.rows} Parquet rows, level with the storage"
        parts = []
        for what, nums in (("for trials not COMPLETE in the storage", self.extra),
                           ("whose params or values differ from the storage", self.differing),
                           ("duplicated", self.duplicates)):
            if nums:
                parts.append(f"{len(nums)} rows {what} (trials {_numbers(nums, 6)})")
        if self.missing:
            parts.append(f"{len(self.missing)} COMPLETE trials without a row (trials "
                         f"{_numbers(self.missing, 6)})")
        return (f"{Path(run_dir) / 'trials'}: " + "; ".join(parts)
                + f"; `codesign doctor {run_dir} --repair` rebuilds the log from the storage")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def log_gaps(run_dir: str | os.PathLike[str]) -> LogGaps:
    """Compare ``RUN_DIR/trials/`` with the run's storage (which must load: a damaged journal
    is a :class:`~codesign.errors.ConfigError`)."""
    from codesign.search.storage.rundir import load_run, open_storage

    exp, run = load_run(run_dir)
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    complete = {t.number: t for t in study.get_trials(deepcopy=False,
                                                       states=(TrialState.COMPLETE,))}
    folder = Path(run_dir) / "trials"
    rows: list[dict[str, Any]] = []
    for f in sorted(folder.glob("part-*.parquet")) if folder.is_dir() else ():
        rows += pq.read_table(f).to_pylist()
    seen: dict[int, int] = {}
    extra, differing = set(), set()
    for row in rows:
        n = int(row["trial"])
        seen[n] = seen.get(n, 0) + 1
        t = complete.get(n)
        if t is None:
            extra.add(n)
            continue
        same = all(_same(row[f"param_{k}"], v) for k, v in t.params.items()
                   if f"param_{k}" in row)  # a parameter dropped by a space change: no column
        same = same and all(_same(row.get(f"value_{o.metric}"), v)
                            for o, v in zip(exp.objectives, t.values or [], strict=False))
        if not same:
            differing.add(n)
    return LogGaps(
        extra=tuple(sorted(extra)),
        differing=tuple(sorted(differing)),
        duplicates=tuple(sorted(n for n, c in seen.items() if c > 1)),
        missing=tuple(sorted(set(complete) - set(seen))),
        rows=len(rows),
    )


def level_log(run_dir: str | os.PathLike[str]) -> tuple[LogGaps, LogGaps]:
    """Rebuild the Parquet log from the storage if it is not level with it. Returns the
    gaps before and after (after: level)."""
    from codesign.search.export import export_run

    before = log_gaps(run_dir)
    if before.level:
        return before, before
    export_run(run_dir)
    return before, log_gaps(run_dir)
