"""Compaction of the Parquet trial log: the small files searches append merged into larger ones.

A search writes a file every :data:`codesign.search.study.LOG_ROWS` trials
(``part-<writer>-<first>-<last>.parquet``, 256 rows; until that was batched, one per
32-row quickstart population: 3,125 files at 100,000 trials), each opened by every reader.
:func:`compact_log` merges the small files, oldest first, into
``part-compact-<first>-<last>.parquet`` files of up to :data:`TARGET_ROWS` rows in row groups
of :data:`ROW_GROUP_ROWS`, once more than :data:`KEEP_SMALL` exist.

The switch, for each merged file, is crash-safe without stopping the writers that append:

1. the merged rows are written under a hidden temporary name (no reader or glob sees it),
   flushed and fsynced (crash point ``compact-written``); the file's schema metadata names its
   sources (:data:`SOURCES_KEY`);
2. one ``rename`` makes it visible and the folder is fsynced (``compact-renamed``): from here
   until step 3 ends, every row of the sources is in the log twice, and every reader of the
   package de-duplicates by trial number (:func:`codesign.results.inspect.read_trials`,
   :func:`codesign.search.parquet_log.logged_trials`), so it reads each row exactly once at
   any instant; a reader that listed a source just deleted reads the log again
   (:func:`codesign.search.parquet_log.read_log`);
3. the sources are deleted (``compact-deleting`` after the first one).

A process killed anywhere leaves a complete, readable log: before the rename, a hidden
temporary file (removed with the other stale temporaries at the next worker start); after it,
sources whose rows the merged file also holds, which :func:`mend` deletes (called by
:func:`codesign.search.parquet_log.recover_log` at every worker start, and by the next
compaction). A source is deleted only when every trial number of it is in the merged file,
so nothing stored is ever lost, and only one compaction (or log replacement) runs at a time
(:func:`log_lock`: a lock file in the run directory).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codesign.search import parquet_log as pl
from codesign.search.experiment import Experiment
from codesign.search.parquet_log import (  # noqa: F401 - re-exported: the switch's parts
    LOCK_FILE,
    SOURCES_KEY,
    WRITER,
    log_lock,
    mend,
)

TARGET_ROWS = 50_000
"""Rows of a merged file: 100,000 trials are two files."""
ROW_GROUP_ROWS = 4_096
"""Rows of a merged file's row groups: what a merge holds in memory at once (a 30,000-trial
quickstart log merged in one piece took 300 MB more than the search; measured on that log,
row groups of 8,192 rows raised the process's peak by 38 MB, of 4,096 by 25, of 2,048 by
14), and large enough that a reader reads few (25 for 100,000 trials)."""
KEEP_SMALL = 16
"""Compaction runs when more small files than this exist (then every small file is merged,
oldest first, into files of up to :data:`TARGET_ROWS` rows)."""


@dataclass
class CompactResult:
    """What :func:`compact_log` did: files and rows before and after, the merged files."""

    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    merged: list[str] = field(default_factory=list)
    sources: int = 0
    skipped: str = ""
    """Why nothing was done, if so ('' otherwise)."""


def _rows(f: Path) -> int:
    with pq.ParquetFile(f) as pf:
        return pf.metadata.num_rows


def _footer(f: Path) -> tuple[int, set[str]]:
    """Rows and column names of a file (its footer only). Not through ``metadata.schema``:
    pyarrow keeps about 45 KB of each file's ``ParquetSchema`` for good (50 MB for the 938
    files of a 30,000-trial log)."""
    with pq.ParquetFile(f) as pf:
        return pf.metadata.num_rows, set(pf.schema_arrow.names)


def _first_trial(f: Path) -> int:
    """The first trial number a file's name gives (``...-<first>-<last>.parquet``), else 0."""
    r = _name_range(f)
    return r[0] if r is not None else 0


JOIN_FILES = 16
"""Small files read before their tables are joined into one: a row group's worth of 32-row
tables held at once costs five times their size in allocator pages (24 MB for 8,192 rows)."""


def _joined(tables: list[pa.Table], sch: pa.Schema) -> pa.Table:
    """``tables`` as one table of one chunk per column, under ``sch``."""
    table = pa.concat_tables(tables).combine_chunks()
    return table if table.schema.equals(sch, check_metadata=False) else table.cast(sch)


def _name_range(f: Path) -> tuple[int, int] | None:
    """The first and last trial numbers a file's name gives, None if it gives none."""
    parts = f.name.removesuffix(".parquet").rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None


def _disjoint(batch: list[Path]) -> list[tuple[int, int]] | None:
    """The name ranges of ``batch`` if every file's name gives one and no two overlap (then no
    trial can be in two files: each file's rows are checked against its range as they are
    read), else None."""
    ranges = [_name_range(f) for f in batch]
    if any(r is None for r in ranges):
        return None
    spans = sorted(r for r in ranges if r is not None)
    if any(a[1] >= b[0] for a, b in itertools.pairwise(spans)):
        return None
    return [r for r in ranges if r is not None]


class _NameMismatch(Exception):
    """A file's rows are not the trials its name gives (the merge then reads the numbers)."""


def _last_rows(trials: np.ndarray) -> np.ndarray:
    """Mask of each trial number's last row in ``trials``."""
    _, from_end = np.unique(trials[::-1], return_index=True)
    keep = np.zeros(len(trials), bool)
    keep[len(trials) - 1 - from_end] = True
    return keep


def _merge(folder: Path, batch: list[Path], sch: pa.Schema, target_rows: int) -> Path | None:
    """Merge ``batch`` into one file (the switch of the module text); None if its name is
    taken by a file outside the batch. Streamed: each source in turn, written in row groups
    of up to :data:`ROW_GROUP_ROWS` rows: memory bounded by one row group, whatever the batch.
    A trial logged twice keeps its last row, in file order, as read_trials does: when the
    names' trial ranges are disjoint (one search's files) only a file's own rows can repeat a
    trial, seen as it is read; otherwise every source's trial numbers are read first."""
    ranges = _disjoint(batch)
    if ranges is not None:

        def own_rows(i: int, table: pa.Table) -> np.ndarray:
            numbers = table.column("trial").to_numpy()
            if len(numbers) == 0 or (numbers.min(), numbers.max()) != ranges[i]:
                raise _NameMismatch(batch[i].name)
            return _last_rows(numbers)

        try:
            return _merge_files(folder, batch, sch, (min(a for a, _ in ranges),
                                                     max(b for _, b in ranges)), own_rows)
        except _NameMismatch:
            pass
    trials = [np.array(pl.read_file(f, columns=["trial"]).column("trial").to_pylist(), np.int64)
              for f in batch]
    every = np.concatenate(trials)
    keep = np.split(_last_rows(every), np.cumsum([len(t) for t in trials])[:-1])
    return _merge_files(folder, batch, sch, (int(every.min()), int(every.max())),
                        lambda i, _table: keep[i])


def _merge_files(folder: Path, batch: list[Path], sch: pa.Schema, span: tuple[int, int],
                 rows_to_keep: Callable[[int, pa.Table], np.ndarray]) -> Path | None:
    """:func:`_merge` of ``batch`` (trials ``span``, first and last), keeping of source ``i``
    (read as ``table``) the rows ``rows_to_keep(i, table)`` marks; an exception it raises
    leaves nothing visible."""
    path = folder / f"part-{WRITER}-{span[0]:08d}-{span[1]:08d}.parquet"
    if path.exists() and path not in batch:
        return None
    meta = dict(sch.metadata or {})
    meta[SOURCES_KEY.encode()] = json.dumps([f.name for f in batch]).encode()
    out_schema = sch.with_metadata(meta)
    tmp = pl.temp_path(path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            with pq.ParquetWriter(fh, out_schema,
                                  use_dictionary=pl.dictionary_columns(out_schema)) as writer:
                pending: list[pa.Table] = []
                n = 0
                for i, f in enumerate(batch):
                    table = pl.read_file(f, sch)
                    mask = rows_to_keep(i, table)
                    if not mask.all():
                        table = table.filter(pa.array(mask))
                    pending.append(table)
                    n += len(table)
                    if n >= ROW_GROUP_ROWS:
                        writer.write_table(_joined(pending, out_schema), row_group_size=n)
                        pending, n = [], 0
                    elif len(pending) >= JOIN_FILES:
                        pending = [_joined(pending, out_schema)]
                if pending:
                    writer.write_table(_joined(pending, out_schema), row_group_size=max(n, 1))
            fh.flush()
            os.fsync(fh.fileno())
        pl.crash_point("compact-written")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    pl.fsync_dir(folder)
    pl.crash_point("compact-renamed")
    for i, src in enumerate(f for f in batch if f != path):
        src.unlink(missing_ok=True)
        if i == 0:
            pl.crash_point("compact-deleting")
    pl.fsync_dir(folder)
    return path


def compact_log(run_dir: str | os.PathLike[str], exp: Experiment, keep_small: int | None = None,
                target_rows: int | None = None, wait: bool = True) -> CompactResult:
    """Merge the small files of ``RUN_DIR/trials/`` (fewer than ``target_rows`` rows), oldest
    first, into files of up to ``target_rows`` rows when more than ``keep_small`` small files
    exist (defaults :data:`KEEP_SMALL`, :data:`TARGET_ROWS`); safe while searches append (see
    the module text). Files are read under ``exp``'s
    schema (a column added since is null in older rows); a file with a column outside it
    (none in a live log) is left alone. ``wait=False``: skip if another compaction runs."""
    keep_small = KEEP_SMALL if keep_small is None else keep_small
    target_rows = TARGET_ROWS if target_rows is None else target_rows
    run_dir = Path(run_dir)
    res = CompactResult()
    folder = run_dir / pl.LOG_DIR
    if not folder.is_dir():
        res.skipped = "no trial log"
        return res
    sch = pl.schema(exp)
    with log_lock(run_dir, wait) as held:
        if not held:
            res.skipped = "another compaction is running"
            return res
        mend(run_dir)
        files = sorted(folder.glob("part-*.parquet"))
        res.files_before = len(files)
        footers = {f: _footer(f) for f in files}
        rows = {f: n for f, (n, _) in footers.items()}
        names = set(sch.names)
        small = sorted((f for f in files if rows[f] < target_rows and footers[f][1] <= names),
                       key=lambda f: (_first_trial(f), f.name))
        while len(small) > keep_small:
            batch, n = [], 0
            for f in small:
                if batch and n + rows[f] > target_rows:
                    break
                batch.append(f)
                n += rows[f]
            if len(batch) < 2:  # the oldest cannot join the next: leave it
                small = small[1:]
                continue
            path = _merge(folder, batch, sch, target_rows)
            small = [f for f in small if f not in batch]
            if path is None:
                continue
            res.merged.append(path.name)
            res.sources += len(batch)
            merged_rows = _rows(path)
            if merged_rows < target_rows:
                rows[path] = merged_rows
                small = sorted([*small, path], key=lambda f: (_first_trial(f), f.name))
        after = sorted(folder.glob("part-*.parquet"))
        res.files_after = len(after)
        res.rows = sum(_rows(f) for f in after)
    return res
