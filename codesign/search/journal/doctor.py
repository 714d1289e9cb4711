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
whole file is first copied to ``<journal>.bak-<UTC time>``, so no byte is ever lost.

Beyond torn writes, a byte can change on disk or by hand. Every line codesign writes has a
CRC-32 in ``<journal>.sums`` (:mod:`codesign.search.journal.sums`), so every line that differs from
what was written is found, even where it is still valid JSON; a single flipped bit is located
by its checksum and set back. Lines without a checksum (written by plain Optuna) are replayed
one by one (:mod:`codesign.search.journal.replay`). Damage nothing explains is never touched unless
asked: :func:`mend_journal` raises :class:`RuntimeError` and leaves the file as it is, or with
``truncate`` keeps the lines before it; :func:`restore_backup` goes back to a backup.

Example:
    >>> from codesign.search.journal.doctor import preflight, repair_run
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from codesign.search.journal.check import (
    _POLL_S,
    BACKUP_MARK,
    JOURNAL_FILE,
    LOCK_SUFFIX,
    JournalHealth,
    _doctor_target,
    _glued_split,
    _is_op,
    _lock_age,
    _numbers,
    _Scan,
    _scan_file,
    check_journal,
    journal_path,
    live_workers,
    lock_path,
    preflight,
    workers_dir,
)
from codesign.search.journal.replay import replay_problems
from codesign.search.journal.sums import (
    correct_bit,
    crc,
    read_sums,
    record_flipped,
    sums_path,
    write_sums,
)
from codesign.search.parquet_log import fsync_dir

__all__ = [
    "JOURNAL_FILE",
    "JournalHealth",
    "Repair",
    "backups_of",
    "check_journal",
    "journal_path",
    "lock_path",
    "mend_journal",
    "preflight",
    "repair_journal",
    "repair_run",
    "restore_backup",
]


# --------------------------------------------------------------------------- repair


def _remove_stale_lock(lock: Path, lock_grace_s: float) -> bool:
    """Remove ``lock`` if it is (still) older than the grace period, or if codesign's workers
    run on this journal and none of them is alive (the lock is a killed writer's, however
    young: :func:`~codesign.search.journal.check.live_workers`); True if removed."""
    age = _lock_age(lock)
    if age is None:
        return False
    journal = Path(os.fspath(lock).removesuffix(LOCK_SUFFIX))
    if age <= lock_grace_s and live_workers(workers_dir(journal)) != 0:
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


def _mend(path: Path, data: bytes, scan: _Scan, sums: dict[int, tuple[int, int]] | None
          ) -> tuple[list[bytes], list[str], int | None, str]:
    """Walk the journal's bytes from line to line: keep each line that matches its checksum
    (or has none and parses), set back a single flipped bit that its checksum locates, drop
    the fragment of a torn write glued to the next entry, cut a torn tail.

    Returns (lines kept, actions, index in the kept lines where an unmendable line stands
    or None, why it cannot be mended).
    """
    rec = sums or {}
    out: list[bytes] = []
    actions: list[str] = []
    pos, n, end_all = 0, 0, scan.tail_start
    while pos < end_all:
        n += 1
        r = rec.get(pos)
        if r is not None and pos + r[0] < end_all:
            length, want = r
            seg, nl = data[pos:pos + length], data[pos + length]
            line_crc = crc(seg)
            if nl == 0x0A and line_crc == want and _is_op(seg):
                out.append(seg)
                pos += length + 1
                continue
            if line_crc == want and bin(nl ^ 0x0A).count("1") == 1 and _is_op(seg):
                out.append(seg)
                actions.append(f"line {n}: its newline had a flipped bit; set back")
                pos += length + 1
                continue
            if nl == 0x0A:
                fixed = correct_bit(seg, want)
                if fixed is not None and _is_op(fixed):
                    out.append(fixed)
                    actions.append(f"line {n}: one flipped bit set back from its checksum")
                    pos += length + 1
                    continue
        stop = data.find(b"\n", pos, end_all)
        line = data[pos:stop]
        if not _is_op(line):
            split = _glued_split(line)
            if split is not None:
                actions.append(f"line {n}: the fragment of a torn write ({split} bytes) removed")
                pos += split
                n -= 1
                continue
            return out, actions, len(out), (f"line {n} is not a journal entry, not a torn "
                                            f"write and not one flipped bit (it starts "
                                            f"{line[:60]!r})")
        if r is not None and record_flipped(path, pos, line):
            actions.append(f"line {n}: its checksum record had a flipped bit; rewritten")
        elif r is not None:
            return out, actions, len(out), (f"line {n} does not match its checksum and is not "
                                            "one flipped bit away from it")
        out.append(line)
        pos = stop + 1
    if scan.size > scan.tail_start:
        tail = data[scan.tail_start:]
        r = rec.get(scan.tail_start)
        if (r is not None and len(tail) == r[0] + 1 and crc(tail[:-1]) == r[1]
                and bin(tail[-1] ^ 0x0A).count("1") == 1):
            out.append(tail[:-1])
            actions.append(f"line {n + 1}: its newline had a flipped bit; set back")
        else:
            actions.append(f"torn tail of {len(tail)} bytes cut")
    return out, actions, None, ""


def _stamp() -> str:
    """The UTC time in the name of a backup or a replaced journal."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _sums_backup(journal: Path, backup: Path) -> Path:
    """The checksum file saved with ``backup`` of ``journal``: ``<journal>.sums.bak-<stamp>``."""
    return Path(f"{sums_path(journal)}{backup.name[len(journal.name):]}")


def _write_backup(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new ``<path>.bak-<UTC time>`` (never overwrites) and fsync it; the
    checksum file goes to ``<path>.sums.bak-<same>``."""
    base = f"{path}{BACKUP_MARK}{_stamp()}"
    for i in range(1000):
        backup = Path(base if i == 0 else f"{base}-{i}")
        try:
            with open(backup, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            continue
        sums = sums_path(path)
        if sums.exists():
            _sums_backup(path, backup).write_bytes(sums.read_bytes())
        fsync_dir(path.parent)
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
    fsync_dir(path.parent)


@dataclass
class Repair:
    """What :func:`mend_journal` did: the backup written (None if nothing changed) and one
    line per change."""

    backup: str | None = None
    actions: list[str] = field(default_factory=list)


def mend_journal(path: str | os.PathLike[str], *, truncate: bool = False,
                 lock_grace_s: float = 30.0, lock_wait_s: float = 5.0) -> Repair:
    """Repair an Optuna journal file in place, after backing it up (see the module).

    * torn tail: cut off; glued line: the torn fragment removed, the intact entry kept;
    * a line that does not match its checksum (:mod:`codesign.search.journal.sums`) and is one
      flipped bit away from it: the bit is set back;
    * any line none of the above explains: :class:`RuntimeError`, file untouched, unless
      ``truncate``: then the journal keeps the lines before it (a consistent prefix), and
      also before the first line with no checksum that does not replay
      (:mod:`codesign.search.journal.replay`);
    * a stale lock file (older than ``lock_grace_s``) is removed.

    Before the journal changes, the file (and its checksum file) are copied to
    ``<path>.bak-<UTC time>`` (``<path>.sums.bak-<same>``). Holds Optuna's journal lock; a lock
    held by a live writer for longer than ``lock_wait_s`` is a :class:`RuntimeError`.
    Idempotent: a healthy journal is not touched. Afterwards the checksum file covers every
    line.
    """
    path = Path(path)
    health = check_journal(path, lock_grace_s=lock_grace_s)
    done = Repair()
    if not health.exists or (health.ok and not truncate):
        return done
    if health.stale_lock is not None and _remove_stale_lock(Path(health.stale_lock),
                                                             lock_grace_s):
        done.actions.append(f"stale lock {health.stale_lock} removed")
    with _journal_lock(path, lock_grace_s, lock_wait_s):
        data = path.read_bytes()
        scan = _scan_file(path)
        if scan.size != len(data):  # pragma: no cover - appended outside Optuna's lock
            raise RuntimeError(f"{path} changed while it was read under the lock; run again")
        sums = read_sums(path)
        kept, actions, bad_at, why = _mend(path, data, scan, sums)
        if bad_at is None and truncate:  # cut at a line without a checksum that does not replay
            verified = _verified(kept, sums)
            for i, reason in sorted(replay_problems(kept).items()):
                if i not in verified:
                    bad_at, why = i, f"entry {i + 1} (no checksum) {reason}"
                    break
        if bad_at is not None:
            if not truncate:
                raise RuntimeError(
                    f"{path}: {why}; the journal was left untouched. Run `codesign doctor "
                    f"{_doctor_target(path, None)} --repair --restore-backup` to go back "
                    f"to the newest {path.name}{BACKUP_MARK}*, or `--repair --truncate` to "
                    f"keep the {bad_at} entries before it")
            actions.append(f"cut at the damage: {why}; kept the {bad_at} entries before it, "
                           f"dropped {len(kept) - bad_at} mended entries after it and the rest "
                           "of the file")
            kept = kept[:bad_at]
        repaired = b"".join(line + b"\n" for line in kept)
        if repaired == data:  # the journal is right; its side file may not be
            if sums is None or scan.unverified or scan.checksum_bad:
                write_sums(path, data)  # every line now has its (right) checksum
            done.actions += actions
            return done
        backup = _write_backup(path, data)
        _rewrite(path, repaired)
        write_sums(path, repaired)
    done.backup = str(backup)
    done.actions += actions
    return done


def _verified(lines: list[bytes], sums: dict[int, tuple[int, int]] | None) -> set[int]:
    """Indices of ``lines`` (laid out from offset 0) that match a checksum record."""
    if not sums:
        return set()
    out, offset = set(), 0
    for i, line in enumerate(lines):
        if sums.get(offset) == (len(line), crc(line)):
            out.add(i)
        offset += len(line) + 1
    return out


def repair_journal(path: str | os.PathLike[str], *, lock_grace_s: float = 30.0,
                   lock_wait_s: float = 5.0) -> str | None:
    """:func:`mend_journal` without truncation; returns the backup path, or None if the
    journal's bytes did not change.

    Example:
        >>> backup = repair_journal("runs/quickstart/study.log")  # doctest: +SKIP
    """
    return mend_journal(path, lock_grace_s=lock_grace_s, lock_wait_s=lock_wait_s).backup


def backups_of(journal: str | os.PathLike[str]) -> list[Path]:
    """The backups ``<journal>.bak-*`` of a journal, oldest first."""
    journal = Path(journal)
    return sorted(journal.parent.glob(journal.name + BACKUP_MARK + "*"))


def restore_backup(journal: str | os.PathLike[str], backup: str | os.PathLike[str] | None = None,
                   *, lock_grace_s: float = 30.0, lock_wait_s: float = 5.0) -> tuple[str, str]:
    """Replace ``journal`` by a backup (default: the newest ``<journal>.bak-*``), keeping the
    current bytes as ``<journal>.damaged-<UTC time>``. The backup's checksum file comes
    with it if it has one (else its lines are unverified). Returns (backup restored, where
    the replaced journal went). Call :func:`mend_journal` afterwards: a backup holds the torn
    write it was taken before."""
    journal = Path(journal)
    if backup is None:
        found = backups_of(journal)
        if not found:
            raise RuntimeError(f"no backup {journal.name}{BACKUP_MARK}* next to {journal}")
        backup = found[-1]
    backup = Path(backup)
    with _journal_lock(journal, lock_grace_s, lock_wait_s):
        current = journal.read_bytes() if journal.exists() else b""
        stamp = _stamp()
        kept = Path(f"{journal}.damaged-{stamp}")
        kept.write_bytes(current)
        old_sums = sums_path(journal)
        if old_sums.exists():
            os.replace(old_sums, f"{old_sums}.damaged-{stamp}")
        _rewrite(journal, backup.read_bytes())
        saved_sums = _sums_backup(journal, backup)
        if saved_sums.exists():
            os.replace(_copy(saved_sums), old_sums)
    return str(backup), str(kept)


def _copy(src: Path) -> Path:
    tmp = src.with_name(f".{src.name}.{os.getpid()}.tmp")
    tmp.write_bytes(src.read_bytes())
    return tmp


def repair_run(run_dir: str | os.PathLike[str], *, lock_grace_s: float = 30.0,
               lock_wait_s: float = 5.0) -> str | None:
    """:func:`repair_journal` on a run directory's journal (see :func:`journal_path`); None
    for a run on a database storage. Returns the backup path, or None if nothing changed."""
    journal = journal_path(run_dir)
    if journal is None:
        return None
    return repair_journal(journal, lock_grace_s=lock_grace_s, lock_wait_s=lock_wait_s)


def replay_check(journal: str | os.PathLike[str]) -> tuple[tuple[int, ...], str]:
    """Lines of ``journal`` without a checksum that parse but do not replay
    (:func:`codesign.search.journal.replay.replay_problems`): (1-based line numbers, one line for a
    human, empty if none). Checksummed lines are trusted as their writer wrote them."""
    path = Path(journal)
    if not path.is_file():
        return (), ""
    lines = path.read_bytes().split(b"\n")[:-1]
    verified = _verified(lines, read_sums(path))
    bad = {i: why for i, why in replay_problems(lines).items()
           if i not in verified and _is_op(lines[i])}
    if not bad:
        return (), ""
    first = min(bad)
    nums = tuple(i + 1 for i in sorted(bad))
    return nums, (f"{path}: line{'s' if len(nums) > 1 else ''} {_numbers(nums)} (no checksum) "
                  f"do{'' if len(nums) > 1 else 'es'} not replay: line {first + 1} "
                  f"{bad[first]}; `codesign doctor {_doctor_target(path, None)} --repair "
                  "--truncate` keeps the lines before "
                  f"it, `--repair --restore-backup` goes back to a {path.name}{BACKUP_MARK}*")

