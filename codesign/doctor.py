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
import json
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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

JOURNAL_FILE = "study.log"  # the embedded journal of a run directory (= codesign.study)
RUN_FILE = "run.json"  # the run's study name and storage (= codesign.study)
LOCK_SUFFIX = ".lock"  # optuna.storages.journal._file.LOCK_FILE_SUFFIX, both lock classes
BACKUP_MARK = ".bak-"

_OP_START = b'{"op_code":'  # how json.dumps(separators=(",", ":")) starts every operation
_SETTLE_S = 1.0  # how long a check waits for a writer that holds the lock to finish
_POLL_S = 0.02


@dataclass(frozen=True)
class JournalHealth:
    """What :func:`check_journal` found in one journal file.

    Attributes:
        path: The journal file checked.
        exists: False if there is no such file (nothing to check: ``ok`` is True).
        lines: Complete (newline-terminated) lines.
        torn_tail_bytes: Bytes after the last newline (a writer killed mid-write); 0 if none.
        bad_lines: 1-based numbers of complete lines that are not a journal operation.
        stale_lock: Path of an Optuna lock file older than the grace period, else None.
        ok: No torn tail, no bad line, no stale lock.
        message: One line for a human: what is wrong and what to do.
    """

    path: str
    exists: bool
    lines: int
    torn_tail_bytes: int
    bad_lines: tuple[int, ...]
    stale_lock: str | None
    ok: bool
    message: str

    @property
    def damaged(self) -> bool:
        """True if the journal's bytes need a repair (a stale lock alone is not damage)."""
        return self.torn_tail_bytes > 0 or bool(self.bad_lines)


@dataclass(frozen=True)
class _Scan:
    size: int  # bytes scanned
    lines: int  # complete lines
    tail_start: int  # offset just after the last newline
    bad: tuple[tuple[int, int, int], ...]  # (line number, start offset, end offset w/o newline)
    unexplained: tuple[tuple[int, bytes], ...]  # bad lines that are not a glued torn write


# --------------------------------------------------------------------------- paths


def lock_path(journal: str | os.PathLike[str]) -> Path:
    """The lock file Optuna's journal file backend uses for ``journal`` (either lock class)."""
    return Path(os.fspath(journal) + LOCK_SUFFIX)


def journal_path(run_dir_or_journal: str | os.PathLike[str]) -> Path | None:
    """The journal file of a run directory, or the given path if it is not a directory.

    A run directory's ``run.json`` decides: no storage means ``<run_dir>/study.log``, a file
    path is that journal; a database URL has no journal file (None).
    """
    given = Path(run_dir_or_journal)
    if not given.is_dir():
        return given
    storage = _run_storage(given)
    if storage is None:
        return given / JOURNAL_FILE
    if "://" in storage:
        return None
    return Path(storage)


def _run_storage(run_dir: Path) -> str | None:
    """The storage recorded in ``run_dir/run.json`` (None: the embedded journal, or no file)."""
    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        return None
    storage = json.loads(info_path.read_text(encoding="utf-8")).get("storage")
    return storage if isinstance(storage, str) else None


def _doctor_target(journal: Path, run_dir: str | os.PathLike[str] | None) -> str:
    """What to pass to ``codesign doctor`` for this journal."""
    if run_dir is not None:
        return shlex.quote(os.fspath(run_dir))
    if journal.name == JOURNAL_FILE:
        return shlex.quote(os.fspath(journal.parent))
    return shlex.quote(os.fspath(journal))


# --------------------------------------------------------------------------- scanning


def _is_op(raw: bytes) -> bool:
    """True if ``raw`` (one line) is what Optuna's journal replay can apply: a JSON object
    with an integer ``op_code``."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return False
    return isinstance(obj, dict) and type(obj.get("op_code")) is int


def _looks_torn(fragment: bytes) -> bool:
    """True if ``fragment`` can be the start of an Optuna append cut short: it begins like an
    operation (``{"op_code":``, possibly itself cut inside that), after any NUL bytes (a block
    a crash left zero-filled), or is only NUL bytes."""
    rest = fragment.lstrip(b"\0")
    if not rest:
        return bool(fragment)
    return rest.startswith(_OP_START) or _OP_START.startswith(rest)


def _glued_split(content: bytes) -> int | None:
    """Where the intact operation starts in a glued line (``fragment + op``), or None.

    The leftmost ``{`` from which the rest of the line parses as an operation is taken: a
    suffix starting inside the fragment would have to contain the whole operation as well,
    which is not valid JSON. The fragment before it must look like a torn append.
    """
    k = content.find(b"{", 1)
    while k != -1:
        if _is_op(content[k:]):
            return k if _looks_torn(content[:k]) else None
        k = content.find(b"{", k + 1)
    return None


def _scan_file(path: Path) -> _Scan:
    """Read ``path`` once, line by line, and classify its lines."""
    offset = 0
    lines = 0
    tail_start = 0
    bad: list[tuple[int, int, int]] = []
    unexplained: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                offset += len(line)
                break
            lines += 1
            if not _is_op(line):
                content = line[:-1]
                bad.append((lines, offset, offset + len(content)))
                if _glued_split(content) is None:
                    unexplained.append((lines, content))
            offset += len(line)
            tail_start = offset
    return _Scan(offset, lines, tail_start, tuple(bad), tuple(unexplained))


def _lock_age(lock: Path) -> float | None:
    """Seconds since the lock file was last modified (its own mtime: Optuna's default lock is
    a symlink to the journal), None if there is no lock file."""
    try:
        return time.time() - os.lstat(lock).st_mtime
    except FileNotFoundError:
        return None


def _stable_scan(path: Path, lock: Path, lock_grace_s: float) -> _Scan:
    """Scan, and if the tail looks torn while a writer may be appending (the file grows or a
    fresh lock is held), wait up to ``_SETTLE_S`` for the append to finish and scan again."""
    scan = _scan_file(path)
    deadline = time.monotonic() + _SETTLE_S
    while scan.size > scan.tail_start and time.monotonic() < deadline:
        age = _lock_age(lock)
        writing = age is not None and age <= lock_grace_s
        if os.stat(path).st_size == scan.size and not writing:
            break
        time.sleep(_POLL_S)
        if os.stat(path).st_size != scan.size:
            scan = _scan_file(path)
    return scan


def _numbers(nums: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in nums[:limit])
    return shown + (f" and {len(nums) - limit} more" if len(nums) > limit else "")


def _message(path: Path, scan: _Scan | None, stale: str | None, lock_grace_s: float,
             target: str) -> str:
    """The one-line explanation of a check."""
    if scan is None:
        what = f"no journal at {path}"
        if stale is None:
            return what + " (nothing to check)"
        return (f"{what}, but a stale lock file {stale} (older than {lock_grace_s:g} s); "
                f"run `codesign doctor {target} --repair` to remove it")
    problems: list[str] = []
    if scan.size > scan.tail_start:
        problems.append(f"its last line is torn ({scan.size - scan.tail_start} bytes after the "
                        "last newline: a writer was killed mid-write)")
    if scan.bad:
        nums = tuple(n for n, _, _ in scan.bad)
        odd = tuple(n for n, _ in scan.unexplained)
        odd_set = set(odd)
        glued = tuple(n for n in nums if n not in odd_set)
        if glued:
            problems.append(f"line{'s' if len(glued) > 1 else ''} {_numbers(glued)} "
                            f"hold{'' if len(glued) > 1 else 's'} a torn write glued to the next "
                            "entry (Optuna loses that entry or fails to load the study)")
        if odd:
            problems.append(f"line{'s' if len(odd) > 1 else ''} {_numbers(odd)} "
                            f"{'are' if len(odd) > 1 else 'is'} not a journal entry and not a "
                            "torn write either")
    if stale is not None:
        problems.append(f"stale lock file {stale} (older than {lock_grace_s:g} s: a writer died "
                        "holding it; other writers stall until they take it over)")
    if not problems:
        return f"{path}: {scan.lines} journal lines, healthy"
    if scan.unexplained:
        return (f"{path}: " + "; ".join(problems) + f"; `codesign doctor {target} --repair` "
                f"refuses to touch it: restore a backup ({path.name}{BACKUP_MARK}*) or fix a "
                "copy by hand")
    return (f"{path}: " + "; ".join(problems)
            + f"; run `codesign doctor {target} --repair` (backs the journal up first)")


def _check(path: Path, lock_grace_s: float,
           run_dir: str | os.PathLike[str] | None) -> tuple[JournalHealth, _Scan | None]:
    if lock_grace_s <= 0:
        raise ValueError(f"`lock_grace_s > 0` must hold, but got (lock_grace_s={lock_grace_s})")
    lock = lock_path(path)
    exists = path.is_file()
    scan = _stable_scan(path, lock, lock_grace_s) if exists else None
    age = _lock_age(lock)
    stale = str(lock) if age is not None and age > lock_grace_s else None
    torn = scan.size - scan.tail_start if scan is not None else 0
    bad = tuple(n for n, _, _ in scan.bad) if scan is not None else ()
    health = JournalHealth(
        path=str(path),
        exists=exists,
        lines=scan.lines if scan is not None else 0,
        torn_tail_bytes=torn,
        bad_lines=bad,
        stale_lock=stale,
        ok=torn == 0 and not bad and stale is None,
        message=_message(path, scan, stale, lock_grace_s, _doctor_target(path, run_dir)),
    )
    return health, scan


def check_journal(path: str | os.PathLike[str], *, lock_grace_s: float = 30.0,
                  run_dir: str | os.PathLike[str] | None = None) -> JournalHealth:
    """Check an Optuna journal file without changing anything.

    Finds a torn tail (bytes after the last newline), bad lines (complete lines that are not
    a journal operation, e.g. a torn write glued to the next append) and a stale lock file
    ``<path>.lock`` (older than ``lock_grace_s``). A missing file is ``ok`` (nothing to check).
    If the tail looks torn while a writer holds a fresh lock, the check waits up to a second
    for that append to finish, so a write in progress is not reported as torn.

    Args:
        path: The journal file.
        lock_grace_s: Age in seconds after which a lock file is stale (Optuna's grace period
            is 30 s).
        run_dir: The run directory, only to name it in the message's ``codesign doctor``
            command (default: the journal's folder if it is ``study.log``, else the journal).

    Example:
        >>> health = check_journal("runs/quickstart/study.log")  # doctest: +SKIP
        >>> health.ok, health.message  # doctest: +SKIP
        (True, 'runs/quickstart/study.log: 412 journal lines, healthy')
    """
    return _check(Path(path), lock_grace_s, run_dir)[0]


def preflight(run_dir_or_journal: str | os.PathLike[str], *,
              lock_grace_s: float = 30.0) -> JournalHealth:
    """:func:`check_journal` on a run directory's journal (see :func:`journal_path`) or on a
    journal file; call it before any worker starts. A run on a database storage has no
    journal: the result is ``ok`` with ``exists=False``."""
    journal = journal_path(run_dir_or_journal)
    given = Path(run_dir_or_journal)
    run_dir = given if given.is_dir() else None
    if journal is None:
        url = _run_storage(given) or ""
        return JournalHealth(url, False, 0, 0, (), None, True,
                             f"{given}: the study is in a database ({url}), no journal to check")
    return check_journal(journal, lock_grace_s=lock_grace_s, run_dir=run_dir)


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
