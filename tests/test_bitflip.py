"""Bit-flip sweep over a run's journal (issue 13, "Data integrity").

A small study is written through the storage codesign runs with
(:func:`codesign.search.journal.check.
open_journal`: Optuna's journal plus the checksum side file), then single bits are flipped at
random, seeded positions (and in every newline). For each flip: if Optuna loads something
different from the original, or fails to load, the check every command runs (and
``doctor``) must flag it; if it says healthy, what loads must equal the original. Every flip is
also set back by ``doctor --repair`` exactly. Without the side file, every flip that makes the
journal fail to load is still flagged (by syntax and replay).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from codesign.search.journal.check import check_journal, open_journal
from codesign.search.journal.doctor import mend_journal, replay_check
from codesign.search.journal.sums import sums_path

N_FLIPS = 600
SEED = 13


def _objective(t: optuna.Trial) -> tuple[float, float]:
    x = t.suggest_float("x", -1.0, 1.0)
    n = t.suggest_int("n", 1, 8)
    c = t.suggest_categorical("c", ["a", "b", "c"])
    t.set_user_attr("codesign:metrics", {"tokens_per_s": x * n, "chip": c})
    return x * n, x * x


def make_study(path: Path) -> None:
    """Six finished trials (one a baseline), one failed, one left RUNNING."""
    study = optuna.create_study(study_name="s", storage=open_journal(path),
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("codesign:fingerprint", "0123456789abcdef")
    study.enqueue_trial({"x": 0.5, "n": 3, "c": "b"}, user_attrs={"baseline": "h100-sxm"})
    study.optimize(_objective, n_trials=6)
    study.tell(study.ask(), state=TrialState.FAIL)
    study.ask()


def loaded(path: Path) -> Any:
    """What plain Optuna loads from ``path`` (every study and trial), or the error's type."""
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        out = []
        for s in storage.get_all_studies():
            trials = storage.get_all_trials(s._study_id, deepcopy=False)
            out.append((s.study_name, s.directions, s.user_attrs, s.system_attrs,
                        [t.__dict__ for t in trials]))
        return out
    except Exception as exc:  # any failure to load is an outcome here
        return type(exc).__name__


def flagged(path: Path) -> bool:
    """What every command checks (the guard in ``open_journal``), or ``doctor``'s replay."""
    return check_journal(path).damaged or bool(replay_check(path)[0])


def flip(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def positions(data: bytes) -> list[tuple[int, int]]:
    rng = random.Random(SEED)
    picks = [(rng.randrange(len(data)), rng.randrange(8)) for _ in range(N_FLIPS)]
    picks += [(i, rng.randrange(8)) for i, b in enumerate(data) if b == 0x0A]
    return picks


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    folder = tmp_path_factory.mktemp("bitflip")
    path = folder / "study.log"
    make_study(path)
    return path, path.read_bytes(), sums_path(path).read_bytes()


def test_study_is_checksummed_and_loads(original: tuple[Path, bytes, bytes]) -> None:
    path, data, sums = original
    assert check_journal(path).ok and check_journal(path).unverified == 0
    assert sums.count(b"\n") == data.count(b"\n")
    trials = loaded(path)[0][4]
    assert [t["state"] for t in trials].count(TrialState.COMPLETE) == 6


def test_every_flip_that_changes_the_load_is_flagged_and_set_back(
        original: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path0, data, sums = original
    want = loaded(path0)
    path = tmp_path / "study.log"
    changed = failed = 0
    for pos, bit in positions(data):
        path.write_bytes(flip(data, pos, bit))
        sums_path(path).write_bytes(sums)
        got = loaded(path)
        changed += got != want
        failed += isinstance(got, str)
        is_flagged = flagged(path)
        if got != want:
            assert is_flagged, (pos, bit, got)
        if not is_flagged:
            assert got == want, (pos, bit)
        # with the checksums every flip is seen, and the repair sets it back exactly
        assert is_flagged, (pos, bit)
        mend_journal(path)
        assert path.read_bytes() == data, (pos, bit)
        assert check_journal(path).ok
        for f in tmp_path.iterdir():
            if f.name not in ("study.log", "study.log.sums"):
                f.unlink()
    # the sweep exercised both kinds of damage: load failures and silent changes
    assert failed > 50 and changed - failed > 20, (changed, failed)


def test_without_checksums_every_flip_that_breaks_the_load_is_flagged(
        original: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path0, data, _ = original
    want = loaded(path0)
    path = tmp_path / "study.log"
    silent = 0
    for pos, bit in positions(data)[:300]:
        path.write_bytes(flip(data, pos, bit))
        got = loaded(path)
        if isinstance(got, str):  # Optuna cannot load it: a command would crash
            assert flagged(path), (pos, bit, got)
        silent += got != want and not isinstance(got, str) and not flagged(path)
    # digits changed inside valid JSON load silently: only the checksums see those
    assert silent > 0


def test_copy_keeps_checksums_valid(original: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    path0, data, _ = original
    path = tmp_path / "study.log"
    shutil.copy(path0, path)
    shutil.copy(sums_path(path0), sums_path(path))
    study = optuna.load_study(study_name="s", storage=open_journal(path))
    study.optimize(_objective, n_trials=2)  # appends after a RUNNING trial: records follow
    assert check_journal(path).ok and check_journal(path).unverified == 0
    assert path.read_bytes().startswith(data)


def test_torn_checksum_record_does_not_hide_the_next(tmp_path: Path) -> None:
    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="s", storage=open_journal(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with open(sums_path(path), "ab") as f:
        f.write(b"@99999 12")  # a writer killed while writing its record
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    health = check_journal(path)
    assert health.ok and health.unverified == 0, health


def test_writer_killed_between_record_and_line(tmp_path: Path) -> None:
    """A record with no line (killed before the journal write), then a torn line with its
    record (killed mid-write) glued to the next append: doctor mends it and every line is
    covered again."""
    from codesign.search.journal.sums import record

    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="s", storage=open_journal(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    data = path.read_bytes()
    last = data.splitlines()[-1]
    with open(sums_path(path), "ab") as f:
        f.write(record(len(data), b'{"op_code":0,"phantom":1}'))  # never reached the journal
        f.write(record(len(data), last))  # this one did, torn
    path.write_bytes(data + last[:30])
    study = optuna.load_study(study_name="s", storage=JournalStorage(
        JournalFileBackend(str(path))))  # plain Optuna skips the torn tail ...
    study.set_user_attr("after", 1)  # ... and this append is glued to it
    assert not check_journal(path).ok
    done = mend_journal(path)
    assert done.backup is not None and any("torn write" in a for a in done.actions)
    health = check_journal(path)
    assert health.ok and health.unverified == 0, health
    assert loaded(path)[0][2] == {"after": 1}


def test_lines_written_by_plain_optuna_are_unverified_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="s", storage=open_journal(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    plain = optuna.load_study(study_name="s", storage=JournalStorage(
        JournalFileBackend(str(path))))
    plain.set_user_attr("note", "from a notebook")
    health = check_journal(path)
    assert health.ok and health.unverified == 1 and "1 of them carry no checksum" in \
        health.message
    assert replay_check(path) == ((), "")


def test_flips_in_the_checksum_file_never_cost_a_trial(original: tuple[Path, bytes, bytes],
                                                       tmp_path: Path) -> None:
    """A flip in ``study.log.sums`` may stop the commands (they cannot tell which file
    changed), but ``doctor --repair`` then mends the side file and keeps the journal."""
    _, data, sums = original
    path = tmp_path / "study.log"
    rng = random.Random(SEED + 1)
    for _ in range(200):
        pos, bit = rng.randrange(len(sums)), rng.randrange(8)
        path.write_bytes(data)
        sums_path(path).write_bytes(flip(sums, pos, bit))
        mend_journal(path)
        assert path.read_bytes() == data, (pos, bit)
        assert check_journal(path).ok, (pos, bit)
        for f in tmp_path.iterdir():
            if f.name not in ("study.log", "study.log.sums"):
                f.unlink()


def test_a_check_decodes_only_lines_the_side_file_does_not_vouch_for(
        original: tuple[Path, bytes, bytes], tmp_path: Path, monkeypatch) -> None:
    """A line with the length and CRC recorded before it was written is not decoded again
    (the bulk of a check's time at 100,000 trials); a flipped line is, and is flagged."""
    from codesign.search.journal import check as check_mod

    _, data, sums = original
    copy = tmp_path / "study.log"
    copy.write_bytes(data)
    sums_path(copy).write_bytes(sums)
    decoded: list[bytes] = []
    real = check_mod._is_op
    monkeypatch.setattr(check_mod, "_is_op", lambda raw: decoded.append(raw) or real(raw))
    assert check_journal(copy).ok and decoded == []
    first_end = data.index(b"\n")
    copy.write_bytes(flip(data, first_end // 2, 0))
    assert check_journal(copy).damaged and len(decoded) == 1
