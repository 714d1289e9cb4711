"""How far the Parquet log can stand in for the storage: reading a run without replaying its
journal (``codesign pareto``, ``codesign report``, :func:`codesign.load_run`).

At the end of every search (:func:`codesign.search.study.finalize`) :func:`finish` compacts
the log (:mod:`codesign.search.storage.compact`) and records in ``RUN_DIR/log_state.json``
how many COMPLETE trials the storage held and, for a journal, the journal file's size and
mtime taken *before* they were counted (a copy that keeps the mtime, ``cp -a``, still
matches; any write to the journal changes both or the mtime). A reader (:func:`log_view`)
then knows, without replaying the journal:

* ``complete``: the journal is untouched since (or a database counts the same COMPLETE
  trials) and the log holds at least that many trials: the log is the whole run, and the
  front recorded with the count is the front, exactly as the storage gives it (its rows as
  :func:`codesign.search.front.pareto_rows` made them: types, improvement over each
  baseline, the mapping's keys the log has no column for);
* ``changed``: the storage has changed since (a search or worker is running, or was
  killed): the log is read as it is, possibly a few populations behind, and the note says so
  (a journal is checked first, :func:`codesign.search.journal.check.check_journal`: a damaged
  one stops the command, as reading it would; an unchanged one was whole at the record);
* ``behind``: the storage is untouched but the log lacks trials (a file lost), or
  ``unknown``: no record (a run written before this version), or a database that cannot be
  counted: the caller reads the storage (replay), as before.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from codesign.errors import ConfigError
from codesign.search import parquet_log as pl
from codesign.search.atomic import atomic_file
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.experiment import Experiment
from codesign.search.storage.trial_rows import METRICS_ATTR

STATE_FILE = "log_state.json"


# --------------------------------------------------------------------------- writing


def _journal_key(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class _Fixed:
    """A study whose COMPLETE trials are a fixed list (the trials :func:`record` counted)."""

    def __init__(self, study: Any, complete: list[Any]) -> None:
        self.directions = study.directions
        self._complete = complete

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return self._complete


def record(exp: Experiment, run: Any, study: Any, writer: str,
           front: tuple[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Record the storage's COMPLETE count (and the journal's identity, taken first) in
    ``RUN_DIR/log_state.json`` (one atomic write) with the rows of the Pareto front of exactly
    those trials (``front``: :func:`codesign.search.front.pareto_rows`, JSON keeps their
    types; ``front``: (COMPLETE trials, front rows) the caller already has, used when that
    count is the storage's, instead of computing the front again). Returns the record."""
    from optuna.trial import TrialState

    from codesign.search.front import pareto_rows
    from codesign.search.storage.rundir import journal_file

    key = _journal_key(journal_file(run))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    n = len(complete)
    if front is not None and front[0] == n:
        rows = front[1]
    else:
        rows = pareto_rows(exp, _Fixed(study, complete))
    state = {"n_complete": n, "journal": key, "writer": writer,
             "written": datetime.now(UTC).isoformat(timespec="seconds"), "front": rows}
    with atomic_file(run.run_dir / STATE_FILE, "w") as fh:
        _dump(state, fh)
    return state


def _dump(state: dict[str, Any], fh: Any) -> None:
    """``json.dump(state, fh, default=str)`` with ``state["front"]`` last, the same text: a
    row at a time through ``json.dumps``, C-encoded (``json.dump`` encodes in Python: 0.84 s
    instead of 0.29 s for a 5,945-design front, 26 ms instead of 11 for 190 designs), never
    the whole front's text at once (16 MB for those 5,945 designs)."""
    head = json.dumps({k: v for k, v in state.items() if k != "front"}, default=str)
    fh.write(head[:-1] + (', "front": [' if len(head) > 2 else '"front": ['))
    for i, row in enumerate(state["front"]):
        fh.write((", " if i else "") + json.dumps(row, default=str))
    fh.write("]}")


def compact_along(exp: Experiment, run: Any) -> None:
    """During a search: merge the per-population files written so far into files of one row
    group (:data:`~codesign.search.storage.compact.ROW_GROUP_ROWS` rows), skipped if another
    process is compacting. Each merge reads a row group's worth of small files, so the
    search's memory does not rise with it, and the compaction at the end (:func:`finish`)
    joins a few row-group files instead of thousands of small ones (68.7 s at 100,000
    quickstart trials, 69 MB over the search's peak). A refused write is one warning."""
    from codesign.search.storage.compact import ROW_GROUP_ROWS, compact_log

    try:
        compact_log(run.run_dir, exp, target_rows=ROW_GROUP_ROWS, wait=False)
    except (OSError, pa.ArrowException, ConfigError) as exc:
        print(f"warning: {run.run_dir}: the Parquet log was not compacted ({exc}); nothing "
              "stored is lost", file=sys.stderr)


def finish(exp: Experiment, run: Any, study: Any, writer: str,
           front: tuple[int, list[dict[str, Any]]] | None = None) -> None:
    """The end of a search: compact the log (skipped if another process is compacting) and
    :func:`record`. Neither is needed for the run to be whole: a refused write (full disk,
    read-only directory) is one warning, and readers then read the storage."""
    from codesign.search.storage.compact import compact_log

    for step in (lambda: compact_log(run.run_dir, exp, wait=False),
                 lambda: record(exp, run, study, writer, front)):
        try:
            step()
        except (OSError, pa.ArrowException, ConfigError) as exc:
            print(f"warning: {run.run_dir}: the Parquet log was not compacted or its state "
                  f"not recorded ({exc}); nothing stored is lost", file=sys.stderr)
            return


# --------------------------------------------------------------------------- reading


@dataclass
class LogView:
    """What :func:`log_view` found. ``n_log``: distinct trials in the log; ``n_stored``: the
    storage's COMPLETE count where known without a replay."""

    status: str
    n_log: int
    n_stored: int | None
    note: str = ""
    front: list[dict[str, Any]] | None = None
    """The recorded front's rows (``complete``), or one of them as a type hint (else)."""

    @property
    def usable(self) -> bool:
        """Read the log, not the storage (``complete`` or ``changed``)."""
        return self.status in ("complete", "changed")


def _rdb_count(run: Any) -> int | None:
    """COMPLETE trials of a database storage by one SQL count (None if it cannot be had)."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from optuna.trial import TrialState

        from codesign.search.storage.rundir import open_storage

        storage = open_storage(run)
        study_id = storage.get_study_id_from_name(run.study_name)
        with _create_scoped_session(storage.scoped_session) as session:
            return int(session.query(models.TrialModel)
                       .filter(models.TrialModel.study_id == study_id,
                               models.TrialModel.state == TrialState.COMPLETE).count())
    except Exception:  # any failure: unknown, and the caller reads the storage
        return None


def log_count(run_dir: str | os.PathLike[str]) -> int:
    """Distinct trial numbers in the Parquet log (one column read)."""
    table = pl.read_log(run_dir, columns=["trial"])
    return 0 if table is None else int(pc.count_distinct(table.column("trial")).as_py())


def log_view(run_dir: str | os.PathLike[str], run: Any) -> LogView:
    """Whether the log of ``run_dir`` can be read instead of the storage (the module text)."""
    from codesign.search.storage.rundir import journal_file

    run_dir = Path(run_dir)
    try:
        state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
        recorded = int(state["n_complete"])
    except (OSError, ValueError, KeyError, TypeError):
        state, recorded = None, None
    journal = journal_file(run)
    if journal is None:
        stored = _rdb_count(run)
        changed = stored is not None and stored != recorded
    else:
        if state is None:
            return LogView("unknown", 0, None)
        try:
            changed = _journal_key(journal) != state.get("journal")
        except OSError:
            return LogView("unknown", 0, None)
        stored = None if changed else recorded
    if stored is None and not changed:
        return LogView("unknown", 0, None)
    n_log = log_count(run_dir)
    if stored is not None and n_log >= stored and stored == recorded:
        return LogView("complete", n_log, stored, front=state.get("front"))
    if not changed:
        return LogView("behind", n_log, stored)
    if n_log == 0:  # nothing logged to stand in for the storage
        return LogView("unknown", 0, stored)
    if journal is not None:  # changed: damaged? (every command stops on a damaged journal)
        from codesign.search.journal.check import check_journal

        health = check_journal(journal, run_dir=run_dir)
        if health.damaged:
            raise ConfigError(journal, "<journal>", "an undamaged journal", health.message)
    since = f" ({stored} COMPLETE now)" if stored is not None else ""
    hint = (state or {}).get("front") or []
    return LogView("changed", n_log, stored, front=hint[:1], note=(
        f"{run_dir}: read from the Parquet log ({n_log} trials); the storage has changed "
        f"since the log was last known complete{since}: a search or worker is running (or "
        "was killed), and trials it finished may not be logged yet; run this again when it "
        f"ends (`codesign resume {run_dir}` levels the log after a kill)"))


def _loss(table: pa.Table, exp: Experiment) -> np.ndarray:
    cols = [table.column(f"value_{o.metric}").to_numpy(zero_copy_only=False).astype(float)
            * (-1.0 if o.direction == "maximize" else 1.0) for o in exp.objectives]
    loss = np.column_stack(cols)
    return np.where(np.isnan(loss), np.inf, loss)


def _dedup(table: pa.Table) -> pa.Table:
    """One row per trial number (the last written, as :func:`read_trials`), by number."""
    trials = table.column("trial").to_numpy()
    if len(np.unique(trials)) < len(trials):
        last = {t: i for i, t in enumerate(trials.tolist())}
        table = table.take(pa.array(sorted(last.values())))
    return table.sort_by("trial")


def front_numbers(run_dir: str | os.PathLike[str], exp: Experiment) -> list[int]:
    """The trial numbers of the constraint-aware Pareto front computed from the log as
    :func:`codesign.search.front.front_trials` computes it from the storage (Optuna's
    non-domination test on the feasible trials, each design once: its first trial)."""
    from optuna.study._multi_objective import _is_pareto_front

    params = [f"param_{p.name}" for p in exp.space.params]
    cols = ["trial", "constraints_ok", *(f"value_{o.metric}" for o in exp.objectives), *params]
    table = pl.read_log(run_dir, pl.schema(exp), columns=cols)
    if table is None or len(table) == 0:
        return []
    table = _dedup(table)
    table = table.filter(pc.fill_null(table.column("constraints_ok"), False))
    if len(table) == 0:
        return []
    on_front = _is_pareto_front(_loss(table, exp), assume_unique_lexsorted=False)
    front = table.filter(pa.array(on_front))
    first: dict[tuple[Any, ...], int] = {}
    for row in front.to_pylist():  # by trial number
        key = tuple(sorted((k.removeprefix("param_"), v) for k, v in row.items()
                           if k in params and v is not None))
        first.setdefault(key, row["trial"])
    return sorted(first.values())


def _rows_where(run_dir: Path, exp: Experiment, expr: Any) -> list[dict[str, Any]]:
    import pyarrow.dataset as pads

    for _ in range(20):  # the log may be compacted while read: read it again
        folder = pl.live_dir(run_dir)
        files = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        if not files:
            return []
        try:
            data = pads.dataset([str(f) for f in files], format="parquet", schema=pl.schema(exp))
            return _dedup(data.to_table(filter=expr)).to_pylist()
        except FileNotFoundError:
            continue
    raise RuntimeError(f"{run_dir}: the log kept changing while it was read")


def trial_rows(run_dir: str | os.PathLike[str], exp: Experiment,
               numbers: list[int]) -> list[dict[str, Any]]:
    """The log rows of trials ``numbers`` (those logged), by trial number, typed as Parquet
    keeps them (no pandas)."""
    return _rows_where(Path(run_dir), exp,
                       pc.field("trial").isin(pa.array(numbers, pa.int64())))


def baseline_rows(run_dir: str | os.PathLike[str], exp: Experiment) -> list[dict[str, Any]]:
    """The log rows of the baseline trials, by trial number."""
    return _rows_where(Path(run_dir), exp, pc.field("is_baseline") == True)  # noqa: E712


def _typed(row: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """A log row with the types of a stored row (``hint``: a recorded front row): Parquet keeps
    every metric as a float, the storage an int where the model gave one."""
    for k, v in row.items():
        if isinstance(hint.get(k), int) and not isinstance(hint.get(k), bool) \
                and isinstance(v, float) and math.isfinite(v) and v.is_integer():
            row[k] = int(v)
    return row


def front_rows(run_dir: str | os.PathLike[str], exp: Experiment,
               view: LogView) -> list[dict[str, Any]]:
    """The rows of :func:`codesign.search.front.pareto_rows` without the storage: the exact
    rows recorded with the count when the log is ``complete``; otherwise computed from the log
    (:func:`front_numbers`, the improvement over each baseline as ``pareto_rows`` computes
    it; a key only the storage holds, a mapping extra the log has no column for, is absent)."""

    run_dir = Path(run_dir)
    if view.status == "complete" and view.front is not None:
        return view.front
    numbers = front_numbers(run_dir, exp)
    if not numbers:
        return []
    hint = view.front[0] if view.front else {}
    rows = [_typed(r, hint) for r in trial_rows(run_dir, exp, numbers)]
    from codesign.search.front import add_improvements

    def values(row: dict[str, Any]) -> list[Any]:
        return [row[f"value_{o.metric}"] for o in exp.objectives]

    baselines = {b["baseline"]: (values(b), b.get("feasible"))
                 for b in baseline_rows(run_dir, exp)}
    for row in rows:
        row["writer"] = "pareto"
        add_improvements(exp, row, values(row), baselines)
    return rows


# --------------------------------------------------------------------------- study-likes


class LogTrial:
    """A trial read from the log, with what :mod:`codesign.results.compare` reads of an
    Optuna trial: ``number``, ``params``, ``values`` and ``user_attrs`` (the metrics under
    ``codesign:metrics``, the chip under ``baseline``)."""

    def __init__(self, exp: Experiment, row: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        self.state = TrialState.COMPLETE  # the log holds COMPLETE trials only
        self.number = int(row["trial"])
        self.params = {p.name: row[f"param_{p.name}"] for p in exp.space.params
                       if row.get(f"param_{p.name}") is not None}
        self.values = [row[f"value_{o.metric}"] for o in exp.objectives]
        self.user_attrs: dict[str, Any] = {METRICS_ATTR: row}
        if row.get("is_baseline"):
            self.user_attrs[BASELINE_ATTR] = row.get("baseline")


class LogStudy:
    """What :func:`codesign.results.compare.projection` and
    :func:`codesign.results.sensitivity.sensitivity` read of a study, from the log: its name
    and some of its trials (``get_trials`` returns only those): the baseline trials, or the
    trials ``numbers``."""

    def __init__(self, name: str, exp: Experiment, run_dir: str | os.PathLike[str],
                 numbers: list[int] | None = None) -> None:
        self.study_name = name
        rows = (baseline_rows(run_dir, exp) if numbers is None else
                _rows_where(Path(run_dir), exp, pc.field("trial").isin(numbers)))
        self._trials = [LogTrial(exp, r) for r in rows]

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[LogTrial]:
        return list(self._trials)


def front_source(run_dir: str | os.PathLike[str], exp: Experiment,
                 spec: Any) -> tuple[list[dict[str, Any]], Any, str]:
    """The rows of the Pareto front (:func:`codesign.search.front.pareto_rows`), what
    :func:`codesign.results.compare.projection` reads of the study, and a note ('' if none):
    from the Parquet log and its recorded front when the log stands in for the storage
    (:func:`codesign.search.storage.log_state.log_view`), else from the storage."""
    import optuna

    from codesign.search.front import pareto_rows
    from codesign.search.storage.rundir import open_storage

    view = log_view(run_dir, spec)
    if view.usable:
        return (front_rows(run_dir, exp, view),
                LogStudy(spec.study_name, exp, run_dir), view.note)
    study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec))
    return pareto_rows(exp, study), study, ""
