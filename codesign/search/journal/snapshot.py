"""Replay snapshots of a journal file: a process opening a long study starts from the state
a search left, not from the first line.

Opening a journal replays every line (10.2 s at 100,000 quickstart trials: a JSON decode of
364 MB). At the end of a long search (:data:`MIN_TRIALS` trials or more) the search writes
``study.log.snapshot``: the compact replay (:class:`~codesign.search.journal.packed.
_CompactReplay`) pickled, each trial's metrics as their place in the journal, under a header
giving the line and byte the replay had read and the CRC of every byte before it. A process
that opens the journal (:class:`~codesign.search.journal.packed.CompactJournalStorage`) loads
the snapshot when the header matches the journal as it is (at least that long, the same
bytes before that point: the replay of those bytes is the snapshot, whichever file holds
them, so a copied run directory starts from it too) and reads only the lines after it;
otherwise, or if the snapshot does not load, it replays the journal as before. The journal
stays the truth: a snapshot is never needed, and a stale one is never used (a journal
repaired or edited before the snapshot's point fails the CRC). The search writes it from a
forked child process, so the pickler's memory (a memo of every object) never enters the
searching process.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import zlib
from pathlib import Path
from typing import Any

from codesign.search.atomic import atomic_file

MIN_TRIALS = 20_000
"""Studies of fewer trials replay in a few seconds: no snapshot."""
MAGIC = b"codesign journal snapshot 1\n"
SUFFIX = ".snapshot"


def snapshot_path(journal: str | os.PathLike[str]) -> Path:
    """The snapshot file of ``journal``."""
    return Path(os.fspath(journal) + SUFFIX)


def _tail_crc(path: Path, offset: int) -> tuple[int, int]:
    """(0, CRC-32 of the journal's first ``offset`` bytes): every byte the snapshot stands
    for (0.14-0.20 s over the 364 MB of a 100,000-trial journal, whose replay takes 10.2 s)."""
    crc, left = 0, offset
    with open(path, "rb") as f:
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise ValueError("the journal is shorter than the snapshot's point")
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    return 0, crc


_SHARED: dict[Any, Any] = {}
"""Layouts of the packed metrics a snapshot restores (shared by all of them)."""

# The classes of codesign.search.journal.packed are known here by name (that module opens
# snapshots: importing it back would be a cycle); pickle finds them by module and name.
_REPLAY, _LAZY, _PACKED = "_CompactReplay", "JournalMetrics", "PackedMetrics"


def _is(obj: Any, name: str) -> bool:
    cls = type(obj)
    return cls.__name__ == name and cls.__module__ == "codesign.search.journal.packed"


class _Pickler(pickle.Pickler):
    """The replay's trials with their metrics left in the journal (their place) and the
    journal file itself a reference, not bytes."""

    def __init__(self, f: Any, source: Any) -> None:
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._source = source

    def persistent_id(self, obj: Any) -> Any:
        return "journal" if obj is self._source else None

    def reducer_override(self, obj: Any) -> Any:
        if _is(obj, _LAZY):
            return type(obj), (obj._source, obj._offset, obj._length)
        if _is(obj, _PACKED):
            return type(obj), (obj._dict(), _SHARED)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: Any, source: Any) -> None:
        super().__init__(f)
        self._source = source

    def persistent_load(self, pid: Any) -> Any:
        if pid == "journal":
            return self._source
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


def write_snapshot(storage: Any) -> Path | None:
    """Write the snapshot of ``storage`` (a compact journal storage, brought up to date
    first); None where it has none to write (another storage, no line read)."""
    backend = storage._backend
    with storage._thread_lock:
        storage._sync_with_backend()
        replay = storage._replay_result
        if not _is(replay, _REPLAY) or not hasattr(backend, "_source"):
            return None
        number = replay.log_number_read
        offset = backend._log_number_offset.get(number)
        if not number or offset is None:
            return None
        journal = Path(backend._file_path)
        start, crc = _tail_crc(journal, offset)
        header = {"log_number": number, "offset": offset,
                  "tail_start": start, "tail_crc": crc, "python": list(sys.version_info[:2])}
        out = snapshot_path(journal)
        with atomic_file(out) as f:
            f.write(MAGIC + json.dumps(header).encode() + b"\n")
            _Pickler(f, backend._source).dump(replay)
    return out


def write_snapshot_elsewhere(storage: Any) -> bool:
    """:func:`write_snapshot` from a forked child process (Linux; the parent waits), so the
    pickler's memo of every object stays out of this process. False where it was not
    written (no fork, the child failed)."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: write, then leave without running the parent's exit handlers
        code = 1
        try:
            code = 0 if write_snapshot(storage) is not None else 1
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def load_snapshot(backend: Any, worker_id_prefix: str) -> Any | None:
    """The replay the snapshot of ``backend``'s journal holds, made this process's (its
    worker id, no trial owned), with ``backend`` set to read on from the snapshot's line;
    None when there is no snapshot or it does not match the journal as it is (then nothing
    is changed)."""
    journal = Path(backend._file_path)
    path = snapshot_path(journal)
    source = getattr(backend, "_source", None)
    if source is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            if f.readline() != MAGIC:
                return None
            header = json.loads(f.readline())
            st = os.stat(journal)
            if (st.st_size < header["offset"]
                    or header["python"] != list(sys.version_info[:2])
                    or _tail_crc(journal, header["offset"]) != (header["tail_start"],
                                                                 header["tail_crc"])):
                return None
            replay = _Unpickler(f, source).load()
    except Exception:
        return None
    if not _is(replay, _REPLAY) or replay.log_number_read != header["log_number"]:
        return None
    replay._worker_id_prefix = worker_id_prefix  # as Optuna's restore_replay_result does
    replay._worker_id_to_owned_trial_id = {}
    replay._last_created_trial_id_by_this_process = -1
    backend._log_number_offset = {0: 0, header["log_number"]: header["offset"]}
    return replay
