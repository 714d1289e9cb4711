"""Trial and Pareto-front logging to Parquet: atomic files, fixed schema, schema metadata.

The Optuna storage is the truth; this log is derived from it and can be rebuilt from it
(:func:`missing_rows`). Every file is written under a hidden temporary name (pyarrow and
pandas skip names starting with "." or "_"), flushed, fsynced and renamed, so a killed process
never leaves a half file visible. One file per flush per writer: no two writers share a file.

Layout::

    RUN_DIR/trials/part-<writer>-<first trial>-<last trial>.parquet
    RUN_DIR/pareto/front-<n trials>-<writer>.parquet
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from codesign.config import Experiment
from codesign.metrics import METRICS

SCHEMA_VERSION = "1"

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


def temp_path(path: Path, pid: int) -> Path:
    """Where process ``pid`` writes ``path`` before the rename: hidden and not ``*.parquet``,
    so no reader or glob picks up a half-written file."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def atomic_write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` via a hidden temp file + fsync + rename; never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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


def rewrite_trials(run_dir: Path, exp: Experiment, rows: list[dict[str, Any]], writer: str) -> None:
    """Replace the whole trial log by ``rows`` under ``exp``'s schema (after an allowed change
    of the search space). The new file is in place before the old ones go."""
    old = sorted((run_dir / "trials").glob("part-*.parquet"))
    if rows:
        write_trials(run_dir, exp, rows, writer)
    keep = run_dir / "trials" / (
        f"part-{writer}-{min(r['trial'] for r in rows):08d}-{max(r['trial'] for r in rows):08d}"
        ".parquet" if rows else "")
    for f in old:
        if f != keep:
            f.unlink()


def logged_trials(run_dir: Path) -> set[int]:
    """Trial numbers already in ``RUN_DIR/trials/`` (read from the files' ``trial`` column)."""
    folder = run_dir / "trials"
    if not folder.is_dir():
        return set()
    seen: set[int] = set()
    for f in sorted(folder.glob("part-*.parquet")):
        seen.update(pq.read_table(f, columns=["trial"]).column("trial").to_pylist())
    return seen
