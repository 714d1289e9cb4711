"""Check and repair the embedded Optuna journal of a run (``codesign doctor [--repair]``).

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` appends one JSON operation per
line, each append (``"\\n".join(ops) + "\\n"``) in a single write under a lock file
``<journal>.lock``. A writer killed in the middle of that write leaves up to three things:

* a **torn tail**: bytes after the last newline. Optuna's reader silently skips them, so the
  study still loads, but the next append is glued onto them;
* a **glued line**: the torn fragment followed, on the same line, by the next writer's intact
  operation. Optuna's reader cannot parse it: the operation on it is silently lost while it is
  the last line, and once anything follows it every load raises ``JSONDecodeError``;
* and a **stale lock**: the killed writer held ``<journal>.lock``, so every other writer stalls
  for Optuna's grace period (30 s) before forcibly taking it over.

The repair removes exactly the bytes of the torn writes and keeps every operation that was
written completely (with its newline): the torn tail is cut off, and a glued line keeps its
intact operation without the fragment before it. The result is the journal Optuna would hold
had the torn write never happened; the line numbers of all complete lines are unchanged. The
whole file is first copied to ``<journal>.bak-<UTC time>``, so no byte is ever lost. A line that
is not explained by a torn write (hand edits, disk corruption) is never touched: the repair
raises :class:`RuntimeError` and leaves the file as it is.

Example:
    >>> from codesign.doctor import preflight, repair_run
    >>> health = preflight("runs/quickstart")  # doctest: +SKIP
    >>> if not health.ok:  # doctest: +SKIP
    ...     print(health.message)
    ...     backup = repair_run("runs/quickstart")
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from codesign.journal_check import (
    _POLL_S,
    BACKUP_MARK,
    JOURNAL_FILE,
    JournalHealth,
    _check,
    _glued_split,
    _lock_age,
    _numbers,
    _Scan,
    _scan_file,
    check_journal,
    journal_path,
    lock_path,
    preflight,
)

__all__ = [
    "JOURNAL_FILE",
    "JournalHealth",
    "check_journal",
    "journal_path",
    "lock_path",
    "preflight",
    "repair_journal",
    "repair_run",
]


# --------------------------------------------------------------------------- repair


def _fsync_dir(folder: Path) -> None:
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


def _remove_stale_lock(lock: Path, lock_grace_s: float) -> bool:
    """Remove ``lock`` if it is (still) older than the grace period; True if removed."""
    age = _lock_age(lock)
    if age is None or age <= lock_grace_s:
        return False
    try:
        os.unlink(lock)
    except FileNotFoundError:  # a waiting Optuna writer took it over meanwhile
        return False
    return True


@contextmanager
def _journal_lock(path: Path, lock_grace_s: float, wait_s: float) -> Iterator[None]:
    """Hold Optuna's journal lock (a symlink, as :class:`JournalFileSymlinkLock` makes it;
    it excludes both Optuna lock classes) so that no writer appends during a repair."""
    lock = lock_path(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.symlink(path.name, lock)
            break
        except FileExistsError:
            if _remove_stale_lock(lock, lock_grace_s):
                continue
            if time.monotonic() >= deadline:
                age = _lock_age(lock)
                held = f"{age:.0f} s" if age is not None else "just"
                raise RuntimeError(
                    f"the journal lock {lock} is held ({held} old, under the {lock_grace_s:g} s "
                    "grace period): a writer may be appending now. Stop the workers of this "
                    f"study, or wait until the lock is {lock_grace_s:g} s old, and repair "
                    "again; the journal was not changed") from None
            time.sleep(_POLL_S)
        except OSError as err:  # pragma: no cover - no symlinks (e.g. unprivileged Windows)
            if err.errno not in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:  # pragma: no cover - taken over after the grace period
            pass


def _refuse(path: Path, scan: _Scan) -> RuntimeError:
    """The error for bad lines that are not torn writes."""
    n, content = scan.unexplained[0]
    more = (f" (and {len(scan.unexplained) - 1} more such lines: "
            f"{_numbers(tuple(m for m, _ in scan.unexplained[1:]))})"
            if len(scan.unexplained) > 1 else "")
    return RuntimeError(
        f"{path}: line {n} is not a journal entry and not a torn write glued to a following "
        f"entry (it starts {content[:80]!r}){more}; the journal was left untouched. Restore a "
        f"backup ({path.name}{BACKUP_MARK}*), or fix a copy by hand")


def _repaired_bytes(data: bytes, scan: _Scan) -> bytes:
    """``data`` without the torn fragments: glued lines keep only their intact operation,
    the torn tail is cut off."""
    parts: list[bytes] = []
    pos = 0
    for _, start, end in scan.bad:
        split = _glued_split(data[start:end])
        assert split is not None, "unexplained bad lines are refused before"
        parts.append(data[pos:start])
        pos = start + split
    parts.append(data[pos:scan.tail_start])
    return b"".join(parts)


def _write_backup(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new ``<path>.bak-<UTC time>`` (never overwrites) and fsync it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    base = f"{path}{BACKUP_MARK}{stamp}"
    for i in range(1000):
        backup = Path(base if i == 0 else f"{base}-{i}")
        try:
            with open(backup, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            continue
        _fsync_dir(path.parent)
        return backup
    raise RuntimeError(f"could not find a free backup name next to {path}")  # pragma: no cover


def _rewrite(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.repair-{os.getpid()}.tmp")
    mode = os.stat(path).st_mode & 0o7777
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def repair_journal(path: str | os.PathLike[str], *, lock_grace_s: float = 30.0,
                   lock_wait_s: float = 5.0) -> str | None:
    """Repair an Optuna journal file in place, after backing it up.

    * torn tail: the bytes after the last newline are cut off (truncate + fsync);
    * glued lines (a torn fragment followed by an intact operation on one line): the fragment
      is removed and the operation kept (atomic rewrite). Only if *every* bad line is such a
      glued torn write: otherwise :class:`RuntimeError` and the file stays untouched;
    * a stale lock file (older than ``lock_grace_s``) is removed.

    Before the journal changes, the whole file is copied to ``<path>.bak-<UTC time>``. The
    repair holds Optuna's journal lock, so no writer appends meanwhile; a lock held by a live
    writer for longer than ``lock_wait_s`` is a :class:`RuntimeError` (stop the workers first).
    Idempotent: a healthy journal is not touched.

    Returns:
        The backup path, or None if the journal's bytes did not change (nothing to do, no
        journal, or only a stale lock removed).

    Example:
        >>> backup = repair_journal("runs/quickstart/study.log")  # doctest: +SKIP
    """
    path = Path(path)
    health, scan = _check(path, lock_grace_s, None)
    if health.ok:
        return None
    if scan is not None and scan.unexplained:
        raise _refuse(path, scan)
    if health.stale_lock is not None:
        _remove_stale_lock(Path(health.stale_lock), lock_grace_s)
    if not health.damaged:
        return None
    with _journal_lock(path, lock_grace_s, lock_wait_s):
        data = path.read_bytes()
        scan = _scan_file(path)
        if scan.size != len(data):  # pragma: no cover - appended outside Optuna's lock
            raise RuntimeError(f"{path} changed while it was read under the lock; run again")
        if scan.unexplained:  # pragma: no cover - appeared between the check and the lock
            raise _refuse(path, scan)
        repaired = _repaired_bytes(data, scan)
        if repaired == data:  # pragma: no cover - repaired by another process meanwhile
            return None
        backup = _write_backup(path, data)
        if scan.bad:
            _rewrite(path, repaired)
        else:
            with open(path, "r+b") as f:
                f.truncate(scan.tail_start)
                f.flush()
                os.fsync(f.fileno())
    return str(backup)


def repair_run(run_dir: str | os.PathLike[str], *, lock_grace_s: float = 30.0,
               lock_wait_s: float = 5.0) -> str | None:
    """:func:`repair_journal` on a run directory's journal (see :func:`journal_path`); None
    for a run on a database storage. Returns the backup path, or None if nothing changed."""
    journal = journal_path(run_dir)
    if journal is None:
        return None
    return repair_journal(journal, lock_grace_s=lock_grace_s, lock_wait_s=lock_wait_s)
