"""Files written whole or not at all: a hidden temporary file named with the writing
process's pid, flushed, fsynced and renamed over the target (:func:`atomic_file`). No reader
or glob ever sees a half-written file; a temporary left by a killed writer is found by its
pid (:func:`codesign.search.parquet_log.remove_stale_temp_files`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temp_path(path: Path, pid: int) -> Path:
    """Where process ``pid`` writes ``path`` before the rename: hidden and not ``*.parquet``,
    so no reader or glob picks up a half-written file."""
    return path.with_name(f".{path.name}.{pid}.tmp")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open ``path``'s temporary file for writing (``mode``: "wb", or "w" for UTF-8 text);
    when the block ends, flush, fsync and rename it over ``path``. If the block or the write
    fails, the temporary is removed and ``path`` is left as it was."""
    tmp = temp_path(path, os.getpid())
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
