"""codesign.search.journal.doctor: torn journal lines and stale lock files (DESIGN.md, "Reliability
the users
rely on": a torn journal line is detected and repaired with a backup, never silently glued).

Every test builds a real Optuna journal in ``tmp_path`` with the same backend the runs use
(``JournalStorage(JournalFileBackend(path))``), then damages it the way a killed writer does.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import (
    JournalFileBackend,
    JournalFileOpenLock,
    JournalFileSymlinkLock,
)
from optuna.trial import TrialState

from codesign.search.journal import doctor
from codesign.search.journal.doctor import check_journal, preflight, repair_journal, repair_run
from codesign.search.journal.sums import sums_path

STUDY = "s"
N_TRIALS = 5


def storage(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def make_journal(path: Path, n_trials: int = N_TRIALS) -> list[float]:
    """A study of ``n_trials`` finished trials; returns their values."""
    study = optuna.create_study(study_name=STUDY, storage=storage(path))
    study.optimize(lambda t: t.suggest_float("x", -1.0, 1.0) ** 2, n_trials=n_trials)
    return [t.value for t in study.trials]


def load(path: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=storage(path))


def tear_last_line(path: Path) -> bytes:
    """Cut the file in the middle of its last line (a writer killed mid-append); returns the
    bytes left."""
    data = path.read_bytes()
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    torn = data[: start + (len(data) - start) // 2]
    path.write_bytes(torn)
    return torn


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


def age(path: Path, seconds: float) -> None:
    """Make a (lock) file ``seconds`` old, without following a symlink."""
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.fixture()
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "study.log"
    make_journal(path)
    return path


# ----------------------------------------------------------------------------- healthy, missing


def test_healthy_journal_is_ok(journal: Path) -> None:
    before = (journal.read_bytes(), journal.stat().st_mtime_ns)
    health = check_journal(journal)
    assert health.ok and health.exists and not health.damaged
    assert health.lines == len(journal.read_bytes().splitlines())
    assert (health.torn_tail_bytes, health.bad_lines, health.stale_lock) == (0, (), None)
    assert "healthy" in health.message
    assert repair_journal(journal) is None
    assert (journal.read_bytes(), journal.stat().st_mtime_ns) == before  # read-only
    assert not backups(journal) and not doctor.lock_path(journal).exists()


def test_missing_journal_is_ok(tmp_path: Path) -> None:
    health = check_journal(tmp_path / "study.log")
    assert health.ok and not health.exists and health.lines == 0
    assert repair_journal(tmp_path / "study.log") is None
    assert not (tmp_path / "study.log").exists()  # never created
    assert preflight(tmp_path).ok and not preflight(tmp_path).exists


def test_lock_file_name_is_optunas(journal: Path) -> None:
    for lock in (JournalFileSymlinkLock(str(journal)), JournalFileOpenLock(str(journal))):
        assert Path(lock._lock_file) == doctor.lock_path(journal)


# ----------------------------------------------------------------------------- torn tail


def test_torn_last_line_detected_and_repaired(journal: Path) -> None:
    values = [t.value for t in load(journal).trials]
    torn = tear_last_line(journal)
    n_complete = torn.count(b"\n")

    health = check_journal(journal)
    assert not health.ok and health.damaged
    assert health.torn_tail_bytes == len(torn) - (torn.rfind(b"\n") + 1) > 0
    assert health.lines == n_complete and health.bad_lines == ()
    assert "--repair" in health.message and "torn" in health.message
    assert f"codesign doctor {journal.parent} --repair" in health.message
    assert journal.read_bytes() == torn  # the check changed nothing

    backup = repair_journal(journal)
    assert backup is not None and Path(backup).read_bytes() == torn  # never lose bytes
    assert Path(backup).name.startswith("study.log.bak-")
    assert journal.read_bytes() == torn[: torn.rfind(b"\n") + 1]
    assert check_journal(journal).ok
    assert not doctor.lock_path(journal).exists()  # the repair's own lock is released

    trials = load(journal).trials
    assert len(trials) == N_TRIALS  # the last trial's completion was the torn line
    assert [t.value for t in trials[:-1]] == values[:-1]
    assert all(t.state == TrialState.COMPLETE for t in trials[:-1])
    assert trials[-1].state == TrialState.RUNNING

    assert repair_journal(journal) is None  # idempotent
    assert backups(journal) == [Path(backup)]


def test_repaired_journal_takes_new_trials(journal: Path) -> None:
    tear_last_line(journal)
    repair_journal(journal)
    study = load(journal)
    study.optimize(lambda t: t.suggest_float("x", -1.0, 1.0) ** 2, n_trials=2)
    assert check_journal(journal).ok
    assert len(load(journal).trials) == N_TRIALS + 2


# ----------------------------------------------------------------------------- glued lines


def glue(path: Path) -> tuple[int, bytes]:
    """Tear the last line, then let Optuna append twice (what a second worker does): the first
    append is glued to the torn fragment, the second makes the study unloadable. Returns the
    glued line's number and the torn bytes."""
    torn = tear_last_line(path)
    glued_no = torn.count(b"\n") + 1
    study = load(path)  # Optuna skips the torn tail silently ...
    study.set_user_attr("glued", 1)  # ... and glues its next append onto it
    with pytest.raises(ValueError):
        study.set_user_attr("after", 2)  # appended, then its read fails on the glued line
    return glued_no, torn


def test_glued_line_reported(journal: Path) -> None:
    glued_no, _ = glue(journal)
    with pytest.raises(ValueError):
        load(journal)  # what a user sees without the doctor
    health = check_journal(journal)
    assert not health.ok and health.damaged
    assert health.bad_lines == (glued_no,) and health.torn_tail_bytes == 0
    assert f"line {glued_no}" in health.message and "--repair" in health.message


def test_glued_line_repair_keeps_the_intact_entry(journal: Path) -> None:
    values = [t.value for t in load(journal).trials]
    glued_no, torn = glue(journal)
    original = journal.read_bytes()

    backup = repair_journal(journal)
    assert backup is not None and Path(backup).read_bytes() == original
    assert check_journal(journal).ok
    repaired = journal.read_bytes()
    lines = repaired.splitlines()
    assert len(lines) == len(original.splitlines())  # line numbers unchanged
    fragment = torn[torn.rfind(b"\n") + 1:]
    assert original.replace(fragment, b"", 1) == repaired  # exactly the fragment removed
    assert json.loads(lines[glued_no - 1])["user_attr"] == {"glued": 1}

    study = load(journal)
    assert study.user_attrs == {"glued": 1, "after": 2}  # both appends survive
    assert [t.value for t in study.trials[:-1]] == values[:-1]
    assert repair_journal(journal) is None


def test_glued_line_and_torn_tail_repaired_together(journal: Path) -> None:
    glued_no, _ = glue(journal)
    glued = journal.read_bytes()
    torn = tear_last_line(journal)
    health = check_journal(journal)
    assert health.bad_lines == (glued_no,) and health.torn_tail_bytes > 0
    backup = repair_journal(journal)
    assert backup is not None and Path(backup).read_bytes() == torn
    assert check_journal(journal).ok
    assert len(journal.read_bytes().splitlines()) == torn.count(b"\n")
    assert load(journal).user_attrs == {"glued": 1}  # the torn one ("after") is gone
    assert glued.count(b"\n") == torn.count(b"\n") + 1


def test_two_torn_writes_glued_in_one_line(journal: Path) -> None:
    data = journal.read_bytes()
    lines = data.splitlines(keepends=True)
    op = lines[-1]
    mangled = b"".join(lines[:-1]) + op[:20] + op[:7] + op + lines[1]
    journal.write_bytes(mangled)
    assert check_journal(journal).bad_lines == (len(lines),)
    repair_journal(journal)
    assert journal.read_bytes() == data + lines[1]


def test_zero_filled_fragment_is_a_torn_write(journal: Path) -> None:
    data = journal.read_bytes()
    last = data.splitlines(keepends=True)[-1]
    journal.write_bytes(data + b"\0" * 64 + last)
    repair_journal(journal)
    assert journal.read_bytes() == data + last


@pytest.mark.parametrize("junk", [b"not json at all", b"", b"[1, 2]", b'{"op_code": 4}xyz',
                                  b'garbage{"op_code":3,"worker_id":"w","study_id":0}'])
def test_unexplained_bad_line_is_refused_untouched(journal: Path, junk: bytes) -> None:
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join([*lines[:3], junk + b"\n", *lines[3:]])
    tear = damaged + lines[-1][:10]  # a torn tail as well: still nothing is touched
    journal.write_bytes(tear)
    health = check_journal(journal)
    assert health.bad_lines == (4,) and "line 4 is not a journal entry" in health.message
    assert "--repair`" in health.message and "--restore-backup" in health.message
    assert "--truncate" in health.message
    with pytest.raises(RuntimeError, match="line 4 is not a journal entry"):
        repair_journal(journal)
    assert journal.read_bytes() == tear and not backups(journal)


# ----------------------------------------------------------------------------- lock files


def test_stale_symlink_lock_reported_and_removed(journal: Path) -> None:
    lock = doctor.lock_path(journal)
    os.symlink(journal, lock)  # what JournalFileSymlinkLock leaves when its writer is killed
    age(lock, 3600)
    before = journal.read_bytes()
    health = check_journal(journal)
    assert health.stale_lock == str(lock) and not health.ok and not health.damaged
    assert "stale lock" in health.message and "--repair" in health.message
    assert repair_journal(journal) is None  # no byte of the journal changed
    assert not lock.exists() and not lock.is_symlink()
    assert journal.read_bytes() == before and not backups(journal)
    assert check_journal(journal).ok


def test_stale_open_lock_reported(journal: Path) -> None:
    lock = doctor.lock_path(journal)
    lock.touch()  # JournalFileOpenLock's lock is a plain file
    age(lock, 120)
    assert check_journal(journal).stale_lock == str(lock)
    assert check_journal(journal, lock_grace_s=600).stale_lock is None
    repair_journal(journal)
    assert not lock.exists()


def test_fresh_lock_is_not_stale(journal: Path) -> None:
    lock = doctor.lock_path(journal)
    os.symlink(journal, lock)
    health = check_journal(journal)
    assert health.ok and health.stale_lock is None
    assert repair_journal(journal) is None and lock.is_symlink()  # a live writer's: kept


def test_torn_tail_with_fresh_lock_is_not_repaired(journal: Path) -> None:
    torn = tear_last_line(journal)
    lock = doctor.lock_path(journal)
    os.symlink(journal, lock)  # a writer that may still be appending
    assert check_journal(journal).torn_tail_bytes > 0  # waits a moment, then reports it
    with pytest.raises(RuntimeError, match=r"lock .* is held"):
        repair_journal(journal, lock_wait_s=0.1)
    assert journal.read_bytes() == torn and not backups(journal) and lock.is_symlink()


def test_fresh_lock_of_a_killed_codesign_writer_is_cleared(journal: Path) -> None:
    """A codesign writer killed mid-append leaves a torn line and a fresh journal lock; its
    worker lock (``<journal>.workers/*.lock``, an flock the kernel drops on kill -9) says that
    no writer of the run is alive, so the repair clears the lock at once instead of waiting
    out the 30 s grace period (the full suite once failed here on a busy machine: the doctor
    ran 9 s after the kill)."""
    torn = tear_last_line(journal)
    lock = doctor.lock_path(journal)
    os.symlink(journal.name, lock)  # fresh: the killed writer held it
    workers = journal.with_name(journal.name + ".workers")
    workers.mkdir()
    (workers / "host-12345-w0.lock").touch()  # its worker lock file, no longer flocked
    repair_journal(journal, lock_wait_s=0.1)
    assert journal.read_bytes() != torn and backups(journal) and not lock.is_symlink()
    assert len(load(journal).trials) >= N_TRIALS - 1


def test_fresh_lock_of_a_live_codesign_writer_is_kept(journal: Path) -> None:
    import fcntl

    torn = tear_last_line(journal)
    lock = doctor.lock_path(journal)
    os.symlink(journal.name, lock)
    workers = journal.with_name(journal.name + ".workers")
    workers.mkdir()
    with open(workers / "host-12345-w0.lock", "a+b") as held:  # a live worker holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match=r"lock .* is held"):
            repair_journal(journal, lock_wait_s=0.1)
    assert journal.read_bytes() == torn and not backups(journal) and lock.is_symlink()


def test_append_in_progress_is_not_torn(journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer finishes once the check is waiting for it (not after a sleep that a loaded
    machine may stretch past the check's patience, which the test lifts instead)."""
    from codesign.search.journal import check as journal_check

    data = journal.read_bytes()
    last = data.splitlines(keepends=True)[-1]
    lock = doctor.lock_path(journal)
    os.symlink(journal, lock)  # a live writer holds the lock ...
    journal.write_bytes(data + last[:25])  # ... and is half-way through its append
    waiting = threading.Event()
    real_sleep = time.sleep

    def check_waits(seconds: float) -> None:
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(journal_check, "_SETTLE_S", 3600.0)
    monkeypatch.setattr(journal_check.time, "sleep", check_waits)

    def finish() -> None:
        assert waiting.wait(3600.0)
        with open(journal, "ab") as f:
            f.write(last[25:])
        os.unlink(lock)

    writer = threading.Thread(target=finish)
    writer.start()
    health = check_journal(journal, lock_grace_s=3600.0)
    waiting.set()  # a check that never waited: let the writer go, and fail below
    writer.join()
    assert health.ok and health.lines == data.count(b"\n") + 1


def test_torn_tail_and_stale_lock_repaired_together(journal: Path) -> None:
    torn = tear_last_line(journal)
    lock = doctor.lock_path(journal)
    os.symlink(journal, lock)  # the killed writer held the lock
    age(lock, 3600)
    health = check_journal(journal)
    assert health.damaged and health.stale_lock == str(lock)
    backup = repair_journal(journal)
    assert backup is not None and Path(backup).read_bytes() == torn
    assert check_journal(journal).ok and not lock.is_symlink()


# ----------------------------------------------------------------------------- run directories


def test_preflight_and_repair_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    make_journal(run / "study.log")
    (run / "run.json").write_text(json.dumps({"study": STUDY, "storage": None}))
    assert preflight(run).ok and preflight(run / "study.log").ok
    tear_last_line(run / "study.log")
    health = preflight(run)
    assert health.path == str(run / "study.log") and health.torn_tail_bytes > 0
    assert f"codesign doctor {run} --repair" in health.message
    assert repair_run(run) is not None and preflight(run).ok
    assert repair_run(run) is None


def test_preflight_follows_the_runs_storage(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "shared.journal"
    make_journal(elsewhere)
    tear_last_line(elsewhere)
    (run / "run.json").write_text(json.dumps({"study": STUDY, "storage": str(elsewhere)}))
    health = preflight(run)
    assert health.path == str(elsewhere) and health.damaged
    assert f"codesign doctor {run} --repair" in health.message
    assert repair_run(run) is not None and preflight(run).ok

    (run / "run.json").write_text(
        json.dumps({"study": STUDY, "storage": "postgresql://u:***@db/x"}))
    health = preflight(run)
    assert health.ok and not health.exists and "database" in health.message
    assert repair_run(run) is None


def test_bad_grace_period(journal: Path) -> None:
    with pytest.raises(ValueError, match="lock_grace_s > 0"):
        check_journal(journal, lock_grace_s=0)


# ----------------------------------------------------------------------------- commands on a run


def _run_search(folder: Path, capsys: pytest.CaptureFixture[str], trials: int) -> Path:
    from test_search import cli, write_experiment

    exp = write_experiment(folder, trials=64)
    run_dir = folder / "run"
    code, _, err = cli(capsys, "search", str(exp), "--trials", str(trials), "--out", str(run_dir))
    assert code == 0, err
    return run_dir


COMMANDS = (("pareto", "{run}"), ("pareto", "{run}", "--format", "json"),
            ("compare", "{run}", "--against", "h100-sxm"), ("resume", "{run}", "--trials", "8"),
            ("search", "{exp}", "--trials", "8", "--out", "{run}"), ("export", "{run}"),
            ("report", "{run}", "-o", "{folder}/r.html"))


def _refused(capsys: pytest.CaptureFixture[str], run_dir: Path, folder: Path) -> list[str]:
    """Run every command on the damaged run: each must exit 2 with one line that names the
    journal and ``codesign doctor``, and change nothing. Returns the messages."""
    from test_search import cli

    journal = run_dir / "study.log"
    before = journal.read_bytes()
    out = []
    for argv in COMMANDS:
        args = [a.format(run=run_dir, exp=folder / "exp.toml", folder=folder) for a in argv]
        code, _, err = cli(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert str(journal) in err and f"codesign doctor {run_dir}" in err, (args, err)
        assert journal.read_bytes() == before
        out.append(err)
    assert not (folder / "r.html").exists()
    return out


def test_torn_line_glued_mid_journal_every_command_exits_2(tmp_path: Path, capsys) -> None:
    run_dir = _run_search(tmp_path, capsys, 16)
    journal = run_dir / "study.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    k = len(lines) // 2
    journal.write_bytes(b"".join([*lines[:k], lines[k][:25], *lines[k:]]))  # fragment + op
    sums = sums_path(journal).read_bytes()
    for err in _refused(capsys, run_dir, tmp_path):
        assert f"line {k + 1}" in err and "torn write glued" in err
    from test_search import cli

    code, out, _ = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 0, out
    assert "torn write" in out and "level with the storage" in out
    assert journal.read_bytes() == b"".join(lines)
    assert sums_path(journal).read_bytes() == sums  # the same lines at the same offsets
    assert check_journal(journal).ok and check_journal(journal).unverified == 0
    assert cli(capsys, "pareto", str(run_dir))[0] == 0


def test_torn_line_at_the_end_pareto_says_so(tmp_path: Path, capsys) -> None:
    from test_search import cli

    run_dir = _run_search(tmp_path, capsys, 8)
    journal = run_dir / "study.log"
    tear_last_line(journal)
    code, out, err = cli(capsys, "pareto", str(run_dir))
    assert code == 2 and out == "", (out, err)
    assert "torn" in err and f"codesign doctor {run_dir} --repair" in err


def test_flipped_digit_is_refused_and_set_back(tmp_path: Path, capsys) -> None:
    from test_search import cli

    run_dir = _run_search(tmp_path, capsys, 8)
    journal = run_dir / "study.log"
    data = journal.read_bytes()
    at = data.index(b'"values":[') + len(b'"values":[') + 1  # a digit of an objective value
    flipped = bytearray(data)
    flipped[at] ^= 0x01
    journal.write_bytes(bytes(flipped))
    code, _, err = cli(capsys, "pareto", str(run_dir))
    assert code == 2 and "does not match its checksum" in err, err
    code, out, _ = cli(capsys, "doctor", str(run_dir))
    assert code == 1 and "checksum" in out
    code, out, _ = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 0 and "flipped bit set back" in out, out
    assert journal.read_bytes() == data


def test_restore_backup_levels_the_parquet_log(tmp_path: Path, capsys) -> None:
    from test_search import cli

    from codesign.search.journal.log_check import log_gaps

    run_dir = _run_search(tmp_path, capsys, 8)
    journal = run_dir / "study.log"
    old = journal.read_bytes()
    code, _, err = cli(capsys, "resume", str(run_dir), "--trials", "16")
    assert code == 0, err
    # an earlier doctor's backup, then damage no repair explains, in the middle
    (run_dir / "study.log.bak-20260101T000000000000Z").write_bytes(old)
    lines = journal.read_bytes().splitlines(keepends=True)
    k = len(old.splitlines()) + 5
    lines[k] = b"garbage " + lines[k]
    journal.write_bytes(b"".join(lines))

    code, out, _ = cli(capsys, "doctor", str(run_dir))
    assert code == 1 and "--restore-backup" in out
    code, _, err = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 1 and "--restore-backup" in err and journal.read_bytes() == b"".join(lines)
    code, out, err = cli(capsys, "doctor", str(run_dir), "--repair", "--restore-backup")
    assert code == 0, (out, err)
    assert "restored" in out and "levelled the Parquet log" in out and "rows for trials not" \
        " COMPLETE in the storage" in out, out
    assert journal.read_bytes() == old
    damaged = list(run_dir.glob("study.log.damaged-*"))
    assert len(damaged) == 1 and damaged[0].read_bytes() == b"".join(lines)
    gaps = log_gaps(run_dir)
    assert gaps.level and gaps.rows == sum(t.state == TrialState.COMPLETE
                                           for t in load_run_study(run_dir).trials)


def test_hand_restored_backup_is_not_healthy_until_levelled(tmp_path: Path, capsys) -> None:
    from test_search import cli

    run_dir = _run_search(tmp_path, capsys, 8)
    journal = run_dir / "study.log"
    old = journal.read_bytes()
    assert cli(capsys, "resume", str(run_dir), "--trials", "16")[0] == 0
    journal.write_bytes(old)  # what a user did by hand with a study.log.bak-*
    code, out, _ = cli(capsys, "doctor", str(run_dir))
    assert code == 1 and "rows for trials not COMPLETE in the storage" in out, out
    code, out, _ = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 0 and "levelled" in out and "level with the storage" in out, out


def load_run_study(run_dir: Path) -> optuna.Study:
    from codesign.search.storage.rundir import load_run, open_storage

    _, run = load_run(run_dir)
    return optuna.load_study(study_name=run.study_name, storage=open_storage(run))


def test_without_checksums_a_changed_value_is_seen_against_parquet(tmp_path: Path,
                                                                   capsys) -> None:
    from test_search import cli

    run_dir = _run_search(tmp_path, capsys, 8)
    journal = run_dir / "study.log"
    sums_path(journal).unlink()  # a journal written before codesign kept checksums
    data = bytearray(journal.read_bytes())
    at = data.index(b'"values":[') + len(b'"values":[') + 1
    data[at] ^= 0x01
    journal.write_bytes(bytes(data))
    trials = sorted(set(pd_trials(run_dir)))
    code, out, _ = cli(capsys, "doctor", str(run_dir))
    assert code == 1 and "carry no checksum" in out and "differ from the storage" in out, out
    code, _, err = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 1 and "not levelled" in err, err
    assert sorted(set(pd_trials(run_dir))) == trials and journal.read_bytes() == data


def pd_trials(run_dir: Path) -> list[int]:
    import pandas as pd

    return list(pd.read_parquet(run_dir / "trials")["trial"])


def test_two_worker_processes_checksum_every_line(tmp_path: Path, capsys) -> None:
    from test_search import cli, write_experiment

    exp = write_experiment(tmp_path, trials=64)
    run_dir = tmp_path / "run"
    code, _, err = cli(capsys, "search", str(exp), "--trials", "24", "--workers", "2",
                       "--out", str(run_dir))
    assert code == 0, err
    health = check_journal(run_dir / "study.log")
    assert health.ok and health.unverified == 0 and health.lines > 24, health
    code, out, _ = cli(capsys, "doctor", str(run_dir))
    assert code == 0 and "level with the storage" in out, out


def test_truncate_keeps_the_lines_before_damage_nothing_mends(tmp_path: Path,
                                                              capsys) -> None:
    from test_search import cli

    from codesign.search.journal.log_check import log_gaps

    run_dir = _run_search(tmp_path, capsys, 16)
    journal = run_dir / "study.log"
    data = journal.read_bytes()
    lines = data.splitlines(keepends=True)
    k = len(lines) // 2
    start = sum(len(x) for x in lines[:k])
    damaged = bytearray(data)
    at = data.index(b'"worker_id":"', start) + len(b'"worker_id":"')
    damaged[at] ^= 0x01  # two flips in one line: no single bit explains it
    damaged[at + 1] ^= 0x01
    journal.write_bytes(bytes(damaged))
    assert cli(capsys, "pareto", str(run_dir))[0] == 2
    code, _, err = cli(capsys, "doctor", str(run_dir), "--repair")
    assert code == 1 and "--truncate" in err and journal.read_bytes() == damaged
    code, out, err = cli(capsys, "doctor", str(run_dir), "--repair", "--truncate")
    assert code == 0, (out, err)
    assert f"kept the {k} entries before it" in out, out
    assert journal.read_bytes() == b"".join(lines[:k])
    assert log_gaps(run_dir).level
    assert cli(capsys, "resume", str(run_dir), "--trials", "8")[0] == 0
