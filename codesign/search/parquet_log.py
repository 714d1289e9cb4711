"""Trial and Pareto-front logging to Parquet: atomic files, fixed schema, schema metadata.

The Optuna storage is the truth; this log is derived from it and can be rebuilt from it
(``codesign export``). Every file is written under a hidden temporary name (pyarrow, pandas and
duckdb's ``*.parquet`` skip names starting with "." or "_"), flushed, fsynced and renamed, so a
killed process never leaves a half file visible. One file per flush per writer: no two writers
share a file.

Replacing the whole log (``codesign export``, an allowed change of the search space) is one
directory swap (:func:`replace_trials`): the new log is written complete into the hidden
``RUN_DIR/.trials.new/`` and exchanged with ``trials/`` by one ``renameat2(RENAME_EXCHANGE)``,
so any reader, ours or a plain ``pd.read_parquet(RUN_DIR / "trials")``, sees the old log or the
new one, never both. Where the file system cannot exchange, two renames go through the hidden
``.trials.old/`` and :func:`live_dir` / :func:`recover_log` resolve the in-between state (the new
log once it is marked complete, else the old one).

At the end of a search the small files are merged into ``part-compact-<first>-<last>.parquet``
files of up to 50,000 rows (:mod:`codesign.search.storage.compact`: a rename, then the sources
deleted; readers de-duplicate by trial number, and :func:`recover_log` deletes the sources a
killed compaction left) and the log's state is recorded (:mod:`codesign.search.storage.
log_state`), so readers need not replay the journal.

Layout::

    RUN_DIR/trials/part-<writer>-<first trial>-<last trial>.parquet
    RUN_DIR/trials/part-compact-<first trial>-<last trial>.parquet
    RUN_DIR/pareto/front-<n trials>-<writer>.parquet
    RUN_DIR/log_state.json
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from codesign.errors import ConfigError
from codesign.model.metrics import METRICS
from codesign.search.atomic import atomic_file, temp_path  # noqa: F401 - temp_path re-exported
from codesign.search.experiment import Experiment

SCHEMA_VERSION = "1"
LOG_DIR = "trials"
STAGING_DIR = ".trials.new"  # the next log while it is written (hidden from plain readers)
RETIRED_DIR = ".trials.old"  # the previous log between the two renames of the fallback swap
COMPLETE_MARK = ".complete"  # in STAGING_DIR: the new log is whole (the fallback swap may go on)
CRASH_ENV = "CODESIGN_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Tests only: die at once (``os._exit(77)``, like ``kill -9``: no cleanup, no flush) when
    the environment variable ``CODESIGN_TEST_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(77)


def write_error(path: Path, exc: OSError, run_dir: Path | None = None) -> ConfigError | None:
    """The one-line error of a write the disk refused (full, read-only, no permission), naming
    ``path`` and how to go on; None for any other OSError (a bug, not the user's)."""
    where = run_dir if run_dir is not None else path.parent.parent
    mend = (f"nothing stored is lost: the storage holds every trial, and `codesign export "
            f"{where}` rewrites the Parquet log once the disk takes writes again")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ConfigError(path, "<write>", f"free space on the disk ({mend})",
                           "no space left on device")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ConfigError(path, "<write>", f"a writable run directory (e.g. chmod -R u+w "
                           f"{where}; {mend})", os.strerror(exc.errno).lower())
    return None

_MAPPING_INT = ("map_tp", "map_pp", "map_dp", "map_cp", "map_ep", "map_vpp", "map_micro_batch",
                "map_zero")


def _param_type(choices: tuple[Any, ...] | None, kind: str) -> pa.DataType:
    if kind == "int":
        return pa.int64()
    if kind == "float":
        return pa.float64()
    values = choices or ()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()


def schema(exp: Experiment) -> pa.Schema:
    """The fixed schema of trial rows for an experiment (params typed from the space)."""
    fields = [
        pa.field("trial", pa.int64()),
        pa.field("is_baseline", pa.bool_()),
        pa.field("baseline", pa.string()),
        pa.field("feasible", pa.bool_()),
        pa.field("constraints_ok", pa.bool_()),
        pa.field("reason", pa.string()),
    ]
    fields += [pa.field(f"param_{p.name}", _param_type(p.choices, p.kind))
               for p in exp.space.params]
    fields += [pa.field(f"value_{o.metric}", pa.float64()) for o in exp.objectives]
    fields += [pa.field(m, pa.float64()) for m in METRICS]
    fields += [pa.field(m, pa.float64()) for m in exp.percentile_metrics()]  # metric@pNN
    fields += [pa.field("n_candidates", pa.int64()), pa.field("n_feasible", pa.int64())]
    fields += [pa.field(k, pa.int64()) for k in _MAPPING_INT]
    fields += [pa.field("map_recompute", pa.string()),
               pa.field("map_sequence_parallel", pa.bool_())]
    fields += [pa.field("writer", pa.string()), pa.field("datetime_complete", pa.string())]
    meta = {
        "codesign.schema_version": SCHEMA_VERSION,
        "codesign.experiment": exp.name,
        "codesign.config_hash": exp.fingerprint(),
        "codesign.units": json.dumps({m: u for m, (u, _) in METRICS.items()}),
        "codesign.objectives": json.dumps([[o.metric, o.direction] for o in exp.objectives]),
    }
    return pa.schema(fields, metadata=meta)


def _table(rows: list[dict[str, Any]], sch: pa.Schema) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in sch}
    return pa.Table.from_pydict(cols, schema=sch)


def dictionary_columns(sch: pa.Schema) -> list[str]:
    """The columns written dictionary-encoded: the strings (a handful of values each, the
    writer tags, the HBM generations). Numbers are written plain: the dictionary encoders of
    some 90 numeric columns held 25 MB while a 4,096-row group was written, for files 4 %
    smaller (measured on a quickstart log)."""
    return [f.name for f in sch if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def atomic_write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` via a hidden temp file + fsync + rename; never a half file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as fh:
            pq.write_table(table, fh, use_dictionary=dictionary_columns(table.schema))
    except OSError as exc:
        if (err := write_error(path, exc)) is not None:
            raise err from exc
        raise
    return path


def write_trials(run_dir: Path, exp: Experiment, rows: list[dict[str, Any]], writer: str) -> Path:
    """Append one file of finished-trial rows to ``RUN_DIR/trials/``."""
    first, last = min(r["trial"] for r in rows), max(r["trial"] for r in rows)
    name = f"part-{writer}-{first:08d}-{last:08d}.parquet"
    return atomic_write(_table(rows, schema(exp)), run_dir / "trials" / name)


def write_pareto(
    run_dir: Path, exp: Experiment, rows: list[dict[str, Any]], n_trials: int, writer: str
) -> Path:
    """Write one Pareto-front snapshot (the front after ``n_trials`` trials)."""
    name = f"front-{n_trials:08d}-{writer}.parquet"
    return atomic_write(_table(rows, schema(exp)), run_dir / "pareto" / name)


def remove_stale_temp_files(run_dir: Path, is_alive: Callable[[int], bool]) -> int:
    """Delete temp files left by killed writers (their pid is no longer alive)."""
    removed = 0
    for folder in (run_dir / "trials", run_dir / "pareto"):
        for f in folder.glob(".*.tmp") if folder.is_dir() else ():
            pid = f.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not is_alive(int(pid)):
                f.unlink(missing_ok=True)
                removed += 1
    return removed


def fsync_dir(folder: Path) -> None:
    """Flush a directory's entries (renames, new files) to disk; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot (the caller then falls back to two renames)."""
    if os.environ.get("CODESIGN_TEST_NO_EXCHANGE"):  # tests: the two-rename fallback
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def live_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The folder that holds the log now (read-only): ``trials/``, or, if a fallback swap was
    killed between its two renames, the complete new log, else the old one."""
    run_dir = Path(run_dir)
    live = run_dir / LOG_DIR
    if live.is_dir() or not (run_dir / RETIRED_DIR).is_dir():
        return live
    new = run_dir / STAGING_DIR
    return new if (new / COMPLETE_MARK).exists() else run_dir / RETIRED_DIR


def recover_log(run_dir: str | os.PathLike[str]) -> None:
    """Finish or undo a log replacement a killed process left (call with the run held, e.g.
    by :func:`replace_trials`' callers): ``trials/`` becomes :func:`live_dir` and the hidden
    leftovers go."""
    run_dir = Path(run_dir)
    live = run_dir / LOG_DIR
    if not live.is_dir() and (run_dir / RETIRED_DIR).is_dir():
        try:
            os.replace(live_dir(run_dir), live)
        except FileNotFoundError:  # another process recovered it first
            pass
        fsync_dir(run_dir)
    for leftover in (STAGING_DIR, RETIRED_DIR):
        if (run_dir / leftover).exists():
            shutil.rmtree(run_dir / leftover, ignore_errors=True)
    mend(run_dir)  # a compaction killed after its rename: its sources go


def replace_trials(run_dir: Path, exp: Experiment, rows: list[dict[str, Any]],
                   writer: str) -> None:
    """Replace the whole trial log by ``rows`` under ``exp``'s schema (``codesign export``, an
    allowed change of the search space) in one atomic step: every reader sees the old log or
    the new one. The caller holds the run (no writer appends meanwhile)."""
    run_dir = Path(run_dir)
    with log_lock(run_dir):  # no compaction merges the old log meanwhile
        _replace_trials(run_dir, exp, rows, writer)


def _replace_trials(run_dir: Path, exp: Experiment, rows: list[dict[str, Any]],
                    writer: str) -> None:
    new = run_dir / STAGING_DIR
    swapped = False
    try:
        recover_log(run_dir)
        new.mkdir()
        if rows:
            first, last = min(r["trial"] for r in rows), max(r["trial"] for r in rows)
            atomic_write(_table(rows, schema(exp)),
                         new / f"part-{writer}-{first:08d}-{last:08d}.parquet")
        (new / COMPLETE_MARK).touch()
        fsync_dir(new)
        crash_point("export-staged")
        live = run_dir / LOG_DIR
        if not live.is_dir():
            os.replace(new, live)
        elif not _exchange(new, live):
            os.replace(live, run_dir / RETIRED_DIR)
            crash_point("export-retired")
            os.replace(new, live)
        swapped = True
        fsync_dir(run_dir)
        crash_point("export-swapped")
        (live / COMPLETE_MARK).unlink(missing_ok=True)
        recover_log(run_dir)  # the old log, now hidden
    except BaseException as exc:
        if not swapped:  # the old log stays; free what the new one took (a full disk)
            shutil.rmtree(new, ignore_errors=True)
        if isinstance(exc, OSError) and (err := write_error(new, exc, run_dir)) is not None:
            raise err from exc
        raise


def unreadable(path: Path, run_dir: Path, exc: BaseException) -> ConfigError:
    """The one-line error of a Parquet file of the log that does not read (garbage, cut)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(path, "<parquet>", f"a readable Parquet file (the log is derived from the "
                       f"storage: `codesign export {run_dir}` rebuilds it; nothing in the "
                       "storage is lost)", detail[:160])


def conform(table: pa.Table, sch: pa.Schema) -> pa.Table:
    """``table`` under ``sch``, as a dataset read with that schema gives it: the columns of
    ``sch`` in its order, each cast to its type, null where the table lacks it; others
    dropped. (Without ``pyarrow.dataset``, whose import alone costs 38 MB.)"""
    if table.schema.equals(sch, check_metadata=False):  # the common case: nothing to do
        return table.replace_schema_metadata(sch.metadata)
    have = dict(zip(table.column_names, table.columns, strict=True))
    cols = [(c if (c := have[f.name]).type == f.type else c.cast(f.type)) if f.name in have
            else pa.nulls(len(table), f.type) for f in sch]
    return pa.Table.from_arrays(cols, schema=sch)


def read_file(path: str | os.PathLike[str], sch: pa.Schema | None = None,
              columns: list[str] | None = None) -> pa.Table:
    """One Parquet file of the log as a table (``columns`` only, if given; under ``sch`` if
    given, see :func:`conform`). Read through ``ParquetFile``: ``pq.read_table`` and
    ``pyarrow.dataset`` would load the dataset module, 38 MB, in every searching process."""
    with pq.ParquetFile(path) as pf:
        names = pf.schema_arrow.names
        if sch is None:
            return pf.read(columns=columns)
        want = sch.names if columns is None else columns
        table = pf.read(columns=[c for c in want if c in names])
    return conform(table, pa.schema([sch.field(c) for c in want]))


def read_log(run_dir: str | os.PathLike[str], sch: pa.Schema | None = None,
             columns: list[str] | None = None) -> pa.Table | None:
    """The trial log as one table (None if there are no files), read from :func:`live_dir`;
    files are read under ``sch`` if given (else under the first file's schema, as a Parquet
    dataset reads them). A log swapped while it is read is read again; a file that does not
    read is a ConfigError naming it and ``codesign export``."""
    run_dir = Path(run_dir)
    for _ in range(20):
        folder = live_dir(run_dir)
        files = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        if not files:
            return None
        try:
            tables = []
            for f in files:
                try:
                    if sch is None:
                        sch = pq.read_schema(f).remove_metadata()
                    tables.append(read_file(f, sch, columns))
                except (pa.ArrowException, OSError) as bad:
                    if isinstance(bad, FileNotFoundError):
                        raise
                    raise unreadable(f, run_dir, bad) from bad
            return pa.concat_tables(tables)
        except FileNotFoundError:
            continue  # the log was replaced meanwhile: read the new one
    raise RuntimeError(f"{run_dir / LOG_DIR}: the log kept changing while it was read")


def logged_trials(run_dir: Path) -> set[int]:
    """Trial numbers already in ``RUN_DIR/trials/`` (read from the files' ``trial`` column)."""
    table = read_log(run_dir, columns=["trial"])
    return set() if table is None else set(table.column("trial").to_pylist())


# --------------------------------------------------------------------------- compaction's switch
# (the merge itself: codesign.search.storage.compact)

WRITER = "compact"
"""The writer part of a merged file's name (``part-compact-<first>-<last>.parquet``)."""
SOURCES_KEY = "codesign.compacted_from"
"""Schema metadata of a merged file: the JSON list of the file names merged into it."""
LOCK_FILE = ".compact.lock"
"""In the run directory: held while the log is compacted or replaced (one at a time)."""


@contextmanager
def log_lock(run_dir: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the run's log lock (compaction, log replacement). Yields False when ``wait`` is
    False and another process holds it, or when the run directory refuses the lock file
    (read-only: nothing will be written anyway)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def compacted_sources(f: Path) -> list[str]:
    """The file names a merged file of the log was made of (its schema metadata)."""
    meta = pq.read_schema(f).metadata or {}
    raw = meta.get(SOURCES_KEY.encode())
    return json.loads(raw) if raw else []


def _trials(f: Path) -> set[int]:
    return set(read_file(f, columns=["trial"]).column("trial").to_pylist())


def mend(run_dir: str | os.PathLike[str]) -> int:
    """Finish a compaction killed after its rename: delete every source a merged file names
    that is still there and whose trial numbers the merged file all holds. Returns the files
    deleted. Best effort: a file that does not read is left for the readers to name."""
    folder = live_dir(run_dir)
    removed = 0
    for merged in sorted(folder.glob(f"part-{WRITER}-*.parquet")) if folder.is_dir() else ():
        try:
            present = [folder / s for s in compacted_sources(merged)
                       if s != merged.name and (folder / s).is_file()]
            if not present:
                continue
            have = _trials(merged)
            for src in present:
                if _trials(src) <= have:
                    src.unlink(missing_ok=True)
                    removed += 1
        except (OSError, pa.ArrowException, ValueError):
            continue
    if removed:
        fsync_dir(folder)
    return removed
