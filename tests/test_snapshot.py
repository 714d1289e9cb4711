"""Replay snapshots (codesign.search.journal.snapshot): a process opening a long study starts
from the snapshot its search left, reads only the lines after it, and gets exactly the trials
a full replay gives; a snapshot that does not match the journal as it is is never used."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from codesign.search import study as st
from codesign.search.bench import SEARCH_EXPERIMENT, experiments_dir
from codesign.search.bench_loop import engine
from codesign.search.experiment import load_experiment
from codesign.search.journal.packed import CompactJournalStorage
from codesign.search.journal.snapshot import (
    snapshot_path,
    write_snapshot,
    write_snapshot_elsewhere,
)
from codesign.search.journal.sums import ChecksummedJournalBackend


def _exp():
    return dataclasses.replace(load_experiment(experiments_dir() / SEARCH_EXPERIMENT),
                               population=8)


def _open(journal: Path) -> CompactJournalStorage:
    return CompactJournalStorage(ChecksummedJournalBackend(str(journal), lazy_metrics=True))


def _same_as_plain(storage: CompactJournalStorage, journal: Path) -> int:
    """The number of trials, asserting each reads as Optuna's own replay gives it."""
    mine = storage.get_all_trials(0, deepcopy=False)
    plain = JournalStorage(JournalFileBackend(str(journal))).get_all_trials(0, deepcopy=False)
    assert len(mine) == len(plain)
    for a, b in zip(mine, plain, strict=True):
        assert (a.number, a._trial_id, a.state, a.params, a.distributions, a.values,
                a.system_attrs, a.datetime_start, a.datetime_complete,
                a.intermediate_values) == (
            b.number, b._trial_id, b.state, b.params, b.distributions, b.values,
            b.system_attrs, b.datetime_start, b.datetime_complete, b.intermediate_values)
        assert {k: dict(v) if isinstance(v, Mapping) else v for k, v in a.user_attrs.items()
                } == b.user_attrs
    return len(mine)


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    engine(_exp(), 96, tmp_path / "e")
    return next(tmp_path.rglob("run.json")).parent


def test_a_snapshot_is_loaded_and_the_lines_after_it_read(run_dir: Path, tmp_path: Path):
    journal = run_dir / "study.log"
    assert write_snapshot(_open(journal)) == snapshot_path(journal)
    storage = _open(journal)
    assert storage.from_snapshot > 0
    assert _same_as_plain(storage, journal) == 96
    # the study goes on after the snapshot (the search itself opens it from there): the new
    # lines are read after it
    from codesign.search.storage.rundir import load_run

    exp, run = load_run(run_dir)
    st.run_search(exp, run, 32, progress=False)
    storage = _open(journal)
    assert storage.from_snapshot > 0 and _same_as_plain(storage, journal) == 128
    # a copy of the run holds the same bytes: it starts from its snapshot too
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    storage = _open(copy / "study.log")
    assert storage.from_snapshot > 0 and _same_as_plain(storage, copy / "study.log") == 128
    # and goes on from there on its own: lines the copy gains are read after it
    exp, run = load_run(copy)
    st.run_search(exp, run, 32, progress=False)
    storage = _open(copy / "study.log")
    assert storage.from_snapshot > 0 and _same_as_plain(storage, copy / "study.log") == 160
    assert _same_as_plain(_open(journal), journal) == 128  # the original is untouched


def test_a_stale_or_broken_snapshot_is_never_used(run_dir: Path):
    journal = run_dir / "study.log"
    write_snapshot(_open(journal))
    good = snapshot_path(journal).read_bytes()
    # the journal rewritten under a new inode with the same bytes: the same replay
    data = journal.read_bytes()
    journal.unlink()
    journal.write_bytes(data)
    storage = _open(journal)
    assert storage.from_snapshot > 0 and _same_as_plain(storage, journal) == 96
    # rewritten with one byte before the snapshot's point changed (a repair would): replayed
    raw = bytearray(data)
    raw[raw.index(b'"value') + 2] = ord("V")  # a key Optuna ignores: the journal replays
    journal.unlink()
    journal.write_bytes(bytes(raw))
    storage = _open(journal)
    assert storage.from_snapshot == 0 and _same_as_plain(storage, journal) == 96
    journal.write_bytes(data)
    # the same file, its bytes before the snapshot's point changed
    write_snapshot(_open(journal))
    raw = bytearray(journal.read_bytes())
    i = raw.index(b'"value') + 2
    raw[i] = ord("V")  # a key Optuna ignores: the journal still replays
    with open(journal, "r+b") as f:
        f.write(bytes(raw))
    assert _open(journal).from_snapshot == 0
    # the journal shorter than the snapshot's point (cut at a line)
    journal.write_bytes(data)
    write_snapshot(_open(journal))
    cut = data.index(b"\n", len(data) // 2) + 1
    os.truncate(journal, cut)
    storage = _open(journal)
    assert storage.from_snapshot == 0 and _same_as_plain(storage, journal) < 96
    # the snapshot cut short, or garbage: replayed as before
    journal.write_bytes(data)
    for bad in (good[: len(good) // 2], b"garbage\n"):
        snapshot_path(journal).write_bytes(bad)
        storage = _open(journal)
        assert storage.from_snapshot == 0 and _same_as_plain(storage, journal) == 96


def test_the_child_writes_it_and_a_long_search_leaves_one(run_dir: Path, tmp_path: Path,
                                                        monkeypatch):
    journal = run_dir / "study.log"
    assert write_snapshot_elsewhere(_open(journal))
    assert _open(journal).from_snapshot > 0
    monkeypatch.setattr(st, "SNAPSHOT_TRIALS", 64)
    engine(_exp(), 64, tmp_path / "long")
    long_journal = next((tmp_path / "long").rglob("study.log"))
    assert snapshot_path(long_journal).is_file()
    storage = _open(long_journal)
    assert storage.from_snapshot > 0 and _same_as_plain(storage, long_journal) == 64
    monkeypatch.setattr(st, "SNAPSHOT_TRIALS", 10_000)
    engine(_exp(), 64, tmp_path / "short")
    assert not snapshot_path(next((tmp_path / "short").rglob("study.log"))).exists()
