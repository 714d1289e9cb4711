"""Check an Optuna journal file without changing it: the read side of
:mod:`codesign.search.journal.doctor`.

Holds the journal and lock paths of a run, the one-pass line scan that finds a torn tail,
glued lines and a stale lock, and the checks built on it (:func:`check_journal`,
:func:`preflight`). What those faults are and how ``codesign doctor --repair`` mends them:
:mod:`codesign.search.journal.doctor`, which re-exports the public names of this module.

Example:
    >>> from codesign.search.journal.check import check_journal
    >>> check_journal("runs/quickstart/study.log").ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codesign.search.journal.sums import crc, read_sums, sums_path

if TYPE_CHECKING:
    from optuna.storages import JournalStorage

JOURNAL_FILE = "study.log"  # the embedded journal of a run directory (= codesign.search.study)
RUN_FILE = "run.json"  # the run's study name and storage (= codesign.search.study)
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
        ok: No torn tail, no bad line, no checksum mismatch, no stale lock.
        message: One line for a human: what is wrong and what to do.
        checksum_bad: 1-based numbers of lines that parse but do not match their record in
            the checksum side file (:mod:`codesign.search.journal.sums`): a changed byte.
        unverified: Complete lines with no checksum record (written by plain Optuna or
            before codesign kept checksums): checked by syntax only.
    """

    path: str
    exists: bool
    lines: int
    torn_tail_bytes: int
    bad_lines: tuple[int, ...]
    stale_lock: str | None
    ok: bool
    message: str
    checksum_bad: tuple[int, ...] = ()
    unverified: int = 0

    @property
    def damaged(self) -> bool:
        """True if the journal's bytes need a repair (a stale lock alone is not damage)."""
        return self.torn_tail_bytes > 0 or bool(self.bad_lines) or bool(self.checksum_bad)


@dataclass(frozen=True)
class _Scan:
    size: int  # bytes scanned
    lines: int  # complete lines
    tail_start: int  # offset just after the last newline
    bad: tuple[int, ...]  # numbers of complete lines that are not a journal operation
    unexplained: tuple[int, ...]  # numbers of bad lines that are not a glued torn write
    checksum_bad: tuple[int, ...] = ()  # parsing lines that differ from their sums record
    unverified: int = 0  # complete lines without a sums record


# --------------------------------------------------------------------------- paths


def lock_path(journal: str | os.PathLike[str]) -> Path:
    """The lock file Optuna's journal file backend uses for ``journal`` (either lock class)."""
    return Path(os.fspath(journal) + LOCK_SUFFIX)


def workers_dir(journal: str | os.PathLike[str]) -> Path:
    """Where codesign's workers on a journal mark themselves alive (an flock on one file each,
    which the kernel releases on any exit, kill -9 included)."""
    path = Path(journal)
    return path.with_name(path.name + ".workers")


def live_workers(folder: Path, skip: Callable[[Path], bool] | None = None) -> int | None:
    """How many worker lock files in ``folder`` a live process holds; the files of dead ones
    are removed. None when ``folder`` does not exist (no codesign worker ever ran there).
    ``skip``: lock files not to count (this process's own)."""
    import fcntl

    if not folder.is_dir():
        return None
    live = 0
    for path in folder.glob("*.lock"):
        if path.name.startswith(".") or (skip is not None and skip(path)):
            continue
        try:
            fh = open(path, "a+b")
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
                continue
            path.unlink(missing_ok=True)
    return live


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
    try:  # a damaged run.json is named by the commands that load the run (runfile)
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    storage = info.get("storage") if isinstance(info, dict) else None
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
    """Read ``path`` once, line by line, and classify its lines. A line whose length and
    CRC are those the side file recorded before it was written is the operation written:
    it is not decoded again (decoding every line was two thirds of a check, 5 s of 7 at
    100,000 trials); any other line is."""
    offset = 0
    lines = 0
    tail_start = 0
    bad: list[int] = []
    unexplained: list[int] = []
    spans: list[tuple[int, int, int]] = []
    written = read_sums(path) or {}
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                offset += len(line)
                break
            lines += 1
            span = (offset, len(line) - 1, crc(line[:-1]))
            spans.append(span)
            if written.get(offset) != span[1:] and not _is_op(line):
                bad.append(lines)
                if _glued_split(line[:-1]) is None:
                    unexplained.append(lines)
            offset += len(line)
            tail_start = offset
    # the side file is read after the journal: its records are written before their lines
    sums = read_sums(path)
    bad_nums = set(bad)
    mismatch: list[int] = []
    unverified = 0
    for n, (start, length, line_crc) in enumerate(spans, start=1):
        rec = sums.get(start) if sums is not None else None
        if rec is None:
            unverified += 1
        elif rec != (length, line_crc) and n not in bad_nums:
            mismatch.append(n)
    return _Scan(offset, lines, tail_start, tuple(bad), tuple(unexplained), tuple(mismatch),
                 unverified)


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
        odd = scan.unexplained
        odd_set = set(odd)
        glued = tuple(n for n in scan.bad if n not in odd_set)
        if glued:
            problems.append(f"line{'s' if len(glued) > 1 else ''} {_numbers(glued)} "
                            f"hold{'' if len(glued) > 1 else 's'} a torn write glued to the next "
                            "entry (Optuna loses that entry or fails to load the study)")
        if odd:
            problems.append(f"line{'s' if len(odd) > 1 else ''} {_numbers(odd)} "
                            f"{'are' if len(odd) > 1 else 'is'} not a journal entry and not a "
                            "torn write either")
    if scan.checksum_bad:
        nums = scan.checksum_bad
        many = len(nums) > 1
        problems.append(f"line{'s' if many else ''} {_numbers(nums)} "
                        f"do{'' if many else 'es'} not match {'their' if many else 'its'} "
                        f"checksum in {sums_path(path).name} (a changed byte in the journal, "
                        "where Optuna would load a wrong value or trial, or in the checksums)")
    if stale is not None:
        problems.append(f"stale lock file {stale} (older than {lock_grace_s:g} s: a writer died "
                        "holding it; other writers stall until they take it over)")
    if not problems:
        note = (f" ({scan.unverified} of them carry no checksum: written by plain Optuna or "
                "before codesign kept checksums, checked by syntax only)"
                if scan.unverified else "")
        return f"{path}: {scan.lines} journal lines, healthy{note}"
    if scan.unexplained or scan.checksum_bad:
        return (f"{path}: " + "; ".join(problems) + f"; run `codesign doctor {target} --repair` "
                "(sets a single flipped bit back from its checksum; otherwise add "
                f"--restore-backup to go back to the newest {path.name}{BACKUP_MARK}* or "
                "--truncate to keep the lines before the damage)")
    return (f"{path}: " + "; ".join(problems)
            + f"; run `codesign doctor {target} --repair` (backs the journal up first)")


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
    path = Path(path)
    if lock_grace_s <= 0:
        raise ValueError(f"`lock_grace_s > 0` must hold, but got (lock_grace_s={lock_grace_s})")
    lock = lock_path(path)
    exists = path.is_file()
    scan = _stable_scan(path, lock, lock_grace_s) if exists else None
    age = _lock_age(lock)
    stale = str(lock) if age is not None and age > lock_grace_s else None
    torn = scan.size - scan.tail_start if scan is not None else 0
    bad = scan.bad if scan is not None else ()
    return JournalHealth(
        path=str(path),
        exists=exists,
        lines=scan.lines if scan is not None else 0,
        torn_tail_bytes=torn,
        bad_lines=bad,
        stale_lock=stale,
        ok=torn == 0 and not bad and stale is None and not (scan and scan.checksum_bad),
        message=_message(path, scan, stale, lock_grace_s, _doctor_target(path, run_dir)),
        checksum_bad=scan.checksum_bad if scan is not None else (),
        unverified=scan.unverified if scan is not None else 0,
    )


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


def open_journal(path: str | os.PathLike[str],
                 run_dir: str | os.PathLike[str] | None = None,
                 compact: bool = False) -> JournalStorage:
    """Open a journal file as an Optuna storage that keeps checksums
    (:class:`codesign.search.journal.sums.ChecksummedJournalBackend`), refusing a damaged one.

    A torn or glued line, a line that does not match its checksum, or a journal Optuna cannot
    replay is a :class:`~codesign.errors.ConfigError` (exit 2) naming the file and the
    ``codesign doctor`` command that mends it, instead of a traceback or a silently shortened
    study. A missing file is created (as Optuna does). ``compact``: a
    :class:`~codesign.search.journal.packed.CompactJournalStorage` (see
    :func:`codesign.search.storage.rundir.open_storage`).
    """
    from optuna.storages import JournalStorage

    from codesign.errors import ConfigError
    from codesign.search.journal.packed import CompactJournalStorage
    from codesign.search.journal.sums import ChecksummedJournalBackend

    path = Path(path)
    target = _doctor_target(path, run_dir)
    if path.exists() and not path.is_file():
        raise ConfigError(path, "<journal>", "an Optuna journal file", "not a regular file")
    if path.exists():
        health = check_journal(path, run_dir=run_dir)
        if health.damaged:
            raise ConfigError(path, "<journal>", "an undamaged journal", health.message)
    try:
        backend = ChecksummedJournalBackend(os.fspath(path), lazy_metrics=compact)
        return CompactJournalStorage(backend) if compact else JournalStorage(backend)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise  # not damage: a full disk or a read-only path (the CLI says so in one line)
        raise ConfigError(path, "<journal>", "a journal Optuna can replay",
                          f"{type(exc).__name__}: {exc}; run `codesign doctor {target}`"
                          ) from None
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise ConfigError(path, "<journal>", "a journal Optuna can replay",
                          f"{type(exc).__name__}: {exc}; run `codesign doctor {target}`"
                          ) from None
