"""Per-line checksums of a run's Optuna journal, kept by codesign in a side file.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` writes one JSON operation per
line and nothing else: a bit flipped inside a number (a parameter, an objective value, a trial
id) leaves valid JSON that Optuna loads without a word. Every process of codesign therefore
writes through :class:`ChecksummedJournalBackend`, which, under Optuna's own journal lock and
*before* the operations reach the journal, appends one record per line to
``<journal>.sums``::

    @<byte offset of the line> <length without the newline> <CRC-32 of the line, 8 hex>

The side file is written first, so any line a reader sees in the journal has its record (a
writer killed in between leaves a record with no line, which is ignored; a later record for
the same offset replaces it). CRC-32 detects every single-bit error (and every burst of up to
32 bits) in a line of any length that a journal holds, and, since its Hamming distance is at
least 3 for such lengths, locates a single flipped bit exactly: :func:`correct_bit` finds it.

Lines with no record (written by plain Optuna, or before codesign kept checksums) are
*unverified*: checked only by syntax and replay. Journal bytes are never changed here.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from codesign.search.journal.packed import JournalFile, pack_log

SUMS_SUFFIX = ".sums"
_RECORD = re.compile(rb"(\d{1,15}) (\d{1,12}) ([0-9a-f]{8})")


def sums_path(journal: str | os.PathLike[str]) -> Path:
    """The checksum side file of ``journal``."""
    return Path(os.fspath(journal) + SUMS_SUFFIX)


def crc(line: bytes) -> int:
    """CRC-32 of one journal line without its newline."""
    return zlib.crc32(line) & 0xFFFFFFFF


def record(offset: int, line: bytes) -> bytes:
    """The side-file record of ``line`` (without newline) starting at byte ``offset``."""
    return b"@%d %d %08x\n" % (offset, len(line), crc(line))


def read_sums(journal: str | os.PathLike[str]) -> dict[int, tuple[int, int]] | None:
    """``{offset: (length, crc)}`` from the side file of ``journal`` (the last record for an
    offset wins), or None if there is no side file. A record torn by a killed writer is
    skipped: each record is the text after the last ``@`` of its line."""
    try:
        data = sums_path(journal).read_bytes()
    except FileNotFoundError:
        return None
    out: dict[int, tuple[int, int]] = {}
    for raw in data.split(b"\n"):
        m = _RECORD.fullmatch(raw.rpartition(b"@")[2])
        if m is not None:
            out[int(m[1])] = (int(m[2]), int(m[3], 16))
    return out


def record_flipped(journal: str | os.PathLike[str], offset: int, line: bytes) -> bool:
    """True if the side file holds the record of ``line`` at ``offset`` with one bit flipped:
    the side file, not the journal, was damaged there."""
    want = record(offset, line)[:-1]
    try:
        data = sums_path(journal).read_bytes()
    except FileNotFoundError:
        return False
    target = int.from_bytes(want, "big")
    for raw in data.split(b"\n"):
        if len(raw) == len(want) and (int.from_bytes(raw, "big") ^ target).bit_count() == 1:
            return True
    return False


def write_sums(journal: str | os.PathLike[str], data: bytes) -> None:
    """Replace the side file by records of every complete line of ``data`` (the journal's
    bytes, trusted: call it only on lines already verified or restored). Atomic rename."""
    out: list[bytes] = []
    offset = 0
    for line in data.split(b"\n")[:-1]:
        out.append(record(offset, line))
        offset += len(line) + 1
    path = sums_path(journal)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(b"".join(out))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def correct_bit(line: bytes, want_crc: int) -> bytes | None:
    """``line`` with the one flipped bit that makes its CRC ``want_crc`` set back, or None if
    no single-bit change does (the damage is larger)."""
    buf = bytearray(line)
    for i in range(len(buf)):
        orig = buf[i]
        for b in range(8):
            buf[i] = orig ^ (1 << b)
            if crc(bytes(buf)) == want_crc:
                return bytes(buf)
        buf[i] = orig
    return None


class ChecksummedJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that also keeps :func:`sums_path` (see the module), and
    with ``lazy_metrics`` hands the replay each trial's metrics left in the journal
    (:func:`~codesign.search.journal.packed.pack_log`): a replay of N trials holds N places,
    never N dicts."""

    def __init__(self, file_path: str, lock_obj: Any = None, lazy_metrics: bool = False) -> None:
        super().__init__(file_path, lock_obj)
        self._lazy = lazy_metrics
        self._shared: dict[Any, Any] = {}
        self._source = JournalFile(file_path)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        """Optuna's decoded operations from ``log_number_from`` on, each trial's metrics
        left in the journal (its line's place: the offsets Optuna's reader records)."""
        self._forget_offsets(log_number_from)
        if not self._lazy:
            yield from super().read_logs(log_number_from)
            return
        number = log_number_from
        offsets = self._log_number_offset
        for log in super().read_logs(log_number_from):
            start, end = offsets.get(number), offsets.get(number + 1)
            where = None if start is None or end is None else (self._source, start, end - start)
            number += 1
            yield pack_log(log, self._shared, where)

    def _forget_offsets(self, log_number_from: int) -> None:
        """Drop the byte offsets Optuna's reader records of lines before ``log_number_from``
        (one per line: 11 MB for the 103,128 lines of a 100,000-trial journal): a replay reads
        on from where it stopped, and a read from an earlier line (none in the package) reads
        the file from its start, as Optuna does for an unknown line."""
        offsets = self._log_number_offset
        if len(offsets) > 1 and log_number_from in offsets:
            self._log_number_offset = {k: v for k, v in offsets.items() if k >= log_number_from}

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` as Optuna does, recording each line's checksum first."""
        lines = [json.dumps(log, separators=(",", ":")).encode("utf-8") for log in logs]
        with get_lock_file(self._lock):
            with open(self._file_path, "ab") as f:
                offset = os.fstat(f.fileno()).st_size
                recs: list[bytes] = []
                for line in lines:
                    recs.append(record(offset, line))
                    offset += len(line) + 1
                with open(sums_path(self._file_path), "a+b") as s:
                    size = s.seek(0, os.SEEK_END)
                    lead = b""
                    if size:  # a record torn by a killed writer: start on a fresh line
                        s.seek(size - 1)
                        lead = b"" if s.read(1) == b"\n" else b"\n"
                    s.write(lead + b"".join(recs))  # "a" mode: always at the end
                    s.flush()
                f.write(b"\n".join(lines) + b"\n")
                f.flush()
                os.fsync(f.fileno())
