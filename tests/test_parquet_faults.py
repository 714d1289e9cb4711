"""Faults of the run directory (issue 13, "Data integrity"): a crash inside ``export`` or an
allowed change of the experiment, a damaged Parquet file or ``run.json``, a full disk, a
read-only run directory.

Crashes are injected deterministically: a ``codesign`` process started with
``CODESIGN_TEST_CRASH_AT=<point>`` dies at that named point with ``os._exit(77)`` (no cleanup,
like ``kill -9``); nothing depends on timing. After each fault the contract is checked: the
Parquet log, read by the package or by plain pandas, holds every COMPLETE trial of the storage
once; the next command completes (or rolls back) what the killed one started; a damaged file
or a refused write is one line naming the file and the command that mends it, exit 2, and
nothing stored is lost.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import codesign
from codesign.cli import main
from codesign.errors import ConfigError
from codesign.results.inspect import read_trials
from codesign.search import parquet_log
from codesign.search.experiment import load_experiment
from codesign.search.storage import rundir as rd

REPO = Path(__file__).resolve().parents[1]
STUDY = "qs"
RUN = Path("runs") / STUDY
CRASHED = 77  # the exit code of codesign.search.parquet_log.crash_point
CLI = "from codesign.cli import entry; entry()"


# ----------------------------------------------------------------------------- helpers


def write_experiment(folder: Path, *, high: int = 256, name: str = "exp.toml") -> Path:
    """The quickstart experiment (population 8) next to a copy of its space, whose
    ``sram_mb`` range ends at ``high`` (another value = an allowed change of the space)."""
    space = (REPO / "search_spaces" / "quickstart.toml").read_text(encoding="utf-8")
    assert "high = 256" in space, "test bug: the quickstart space changed"
    (folder / f"space-{high}.toml").write_text(space.replace("high = 256", f"high = {high}", 1),
                                               encoding="utf-8")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in (('name = "quickstart"', f'name = "{STUDY}"'),
                     ('"../search_spaces/quickstart.toml"', f'"space-{high}.toml"'),
                     ("population = 32", "population = 8")):
        assert old in text, f"test bug: {old!r} not in the quickstart experiment"
        text = text.replace(old, new, 1)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``codesign ARGV`` in this process."""
    args = list(argv)
    if args[0] in ("search", "resume"):
        args.append("--no-progress")
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def crash(point: str, *argv: str, fallback: bool = False) -> subprocess.CompletedProcess[str]:
    """``codesign ARGV`` in a new process that dies at ``point`` (``os._exit``)."""
    env = {**os.environ, "CODESIGN_TEST_CRASH_AT": point}
    if fallback:
        env["CODESIGN_TEST_NO_EXCHANGE"] = "1"
    args = [*argv, "--no-progress"] if argv[0] in ("search", "resume") else list(argv)
    proc = subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == CRASHED, (point, proc.returncode, proc.stdout, proc.stderr)
    return proc


def load(run_dir: Path) -> optuna.Study:
    _, run = rd.load_run(run_dir)
    return optuna.load_study(study_name=run.study_name, storage=rd.open_storage(run))


def complete(run_dir: Path) -> set[int]:
    """The COMPLETE trial numbers of the storage, read without the package's recovery."""
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    storage = rd.open_storage(rd.RunSpec(run_dir, info["study"], None, "random", 0))
    study = optuna.load_study(study_name=info["study"], storage=storage)
    return {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}


def plain_rows(run_dir: Path) -> list[int]:
    """Trial numbers of the log as plain pandas reads the folder (no package code)."""
    return sorted(pd.read_parquet(run_dir / "trials")["trial"])


def check_log(run_dir: Path) -> list[int]:
    """Storage and log agree for plain pandas and for the package: every COMPLETE trial once,
    nothing hidden left over. Returns the trial numbers."""
    want = sorted(complete(run_dir))
    assert plain_rows(run_dir) == want
    exp, _ = rd.load_run(run_dir)
    assert list(read_trials(run_dir, exp)["trial"]) == want
    leftovers = {".trials.new", ".trials.old", ".change", ".change.tmp"}
    assert not leftovers & {p.name for p in run_dir.iterdir()}
    return want


def files(run_dir: Path) -> dict[str, object]:
    """What a refused command must keep: every file of the run directory and its bytes, and
    the trials of the storage (opening a journal study appends a no-op record, and its checksum
    to ``study.log.sums``, so the journal is compared by what it loads)."""
    kept: dict[str, object] = {
        str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
        and p.name not in ("study.log", "study.log.sums")}
    journal = run_dir / "study.log"
    storage = rd.open_storage(rd.RunSpec(run_dir, STUDY, str(journal), "random", 0))
    study = optuna.load_study(study_name=STUDY, storage=storage)
    kept["study.log"] = [(t.number, t.state, t.params, t.values) for t in study.get_trials()]
    return kept


def one_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, err)


@pytest.fixture(scope="module", autouse=True)
def _file_per_population(file_per_population: None) -> None:
    """A Parquet file for every population (conftest.file_per_population)."""


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 16 trials (two Parquet parts), made once; tests work on copies."""
    folder = tmp_path_factory.mktemp("base")
    exp = write_experiment(folder)
    old = Path.cwd()
    os.chdir(folder)
    try:
        assert main(["search", str(exp), "--trials", "16", "--no-progress"]) == 0
    finally:
        os.chdir(old)
    return folder


@pytest.fixture
def work(base_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for p in base_run.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp_path / p.name)
    monkeypatch.chdir(tmp_path)
    assert len(plain_rows(RUN)) == 16
    return tmp_path


# ----------------------------------------------------------------------------- export


class Killed(BaseException):
    """A crash, raised where a test kills the process in place."""


def test_export_stopped_before_the_old_files_go_shows_each_trial_once(
        work: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: the new file written, the old parts not yet deleted (their deletion
    is where the export dies). Every reader sees each trial once, and resume keeps that."""
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name.startswith("part-") and self.parent.name == "trials":
            raise Killed
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    try:
        main(["export", str(RUN)])
    except Killed:
        pass
    monkeypatch.setattr(Path, "unlink", real_unlink)
    capsys.readouterr()
    assert plain_rows(RUN) == sorted(complete(RUN))
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24


@pytest.mark.parametrize("point,fallback", [
    ("export-staged", False), ("export-swapped", False),
    ("export-staged", True), ("export-retired", True), ("export-swapped", True),
])
def test_export_killed_at_any_point_leaves_one_log(work: Path, capsys, point: str,
                                                   fallback: bool) -> None:
    """Killed at each step of the swap (also the two-rename fallback): the package's readers
    see the old or the new log, every trial once; plain pandas too wherever ``trials/``
    exists; the next command brings the folder back to one log."""
    want = sorted(complete(RUN))
    crash(point, "export", str(RUN), fallback=fallback)
    exp, _ = rd.load_run(RUN)
    assert list(read_trials(RUN, exp)["trial"]) == want
    assert parquet_log.logged_trials(RUN) == set(want)
    if (RUN / "trials").is_dir():
        assert plain_rows(RUN) == want
    else:
        assert point == "export-retired"  # between the fallback's two renames only
    code, _out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24
    assert cli(capsys, "export", str(RUN))[0] == 0
    assert len(check_log(RUN)) == 24
    assert len(list((RUN / "trials").glob("part-*.parquet"))) == 1


def test_a_reader_during_the_swap_reads_the_new_log(work: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader whose file vanished under it (the log was swapped) reads again."""
    real = parquet_log.read_file
    calls = []

    def read_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise FileNotFoundError("swapped")
        return real(*args, **kwargs)

    monkeypatch.setattr(parquet_log, "read_file", read_file)
    exp, _ = rd.load_run(RUN)
    n_files = len(list((RUN / "trials").glob("part-*.parquet")))
    assert len(read_trials(RUN, exp)) == 16
    assert len(calls) == 1 + n_files  # the first read failed, then the whole log again


def test_export_is_refused_while_a_search_of_the_run_is_alive(work: Path, capsys) -> None:
    folder = RUN / "study.log.workers"
    folder.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys; f=open(sys.argv[1],'a+b'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(folder / "otherhost-1-w0.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = files(RUN)
        code, _out, err = cli(capsys, "export", str(RUN))
        assert code == 2, err
        one_line(err, str(RUN), "live worker")
        assert files(RUN) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert cli(capsys, "export", str(RUN))[0] == 0


# ----------------------------------------------------------------------------- allowed change


def _fingerprints(run_dir: Path) -> tuple[str, str]:
    """(run.json's fingerprint, the storage's) of a run, read without the package."""
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    storage = rd.open_storage(rd.RunSpec(run_dir, info["study"], None, "random", 0))
    study = optuna.load_study(study_name=info["study"], storage=storage)
    return info["fingerprint"], study.user_attrs[rd.FINGERPRINT_ATTR]


@pytest.mark.parametrize("point", ["change-staged", "change-committed", "change-log",
                                   "change-history", "export-staged", "export-swapped"])
def test_change_killed_at_any_point_is_completed_or_rolled_back(work: Path, capsys,
                                                                point: str) -> None:
    """``search --allow-space-change`` killed at each step: the next command (a read-only one
    first) finds a usable run: before the commit the change never happened, after it the
    change is completed; config, storage fingerprint, history and log agree."""
    old = rd.load_run(RUN)[0].fingerprint()
    changed = write_experiment(work, high=248, name="changed.toml")
    new = load_experiment(changed).fingerprint()
    crash(point, "search", str(changed), "--trials", "8", "--allow-space-change")

    code, _out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    want = old if point == "change-staged" else new
    assert _fingerprints(RUN) == (want, want)
    history = list((RUN / "history").glob("*")) if (RUN / "history").exists() else []
    if want == new:
        assert [sorted(p.name for p in h.iterdir()) for h in history] == [
            ["experiment.toml", "run.json", "search_space.toml"]]
        assert json.loads((history[0] / "run.json").read_text())["fingerprint"] == old
    else:
        assert history == []
    assert len(check_log(RUN)) == 16
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24
    assert _fingerprints(RUN) == (want, want)


def test_change_stopped_after_run_json_moved_is_usable(work: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case in this process: the change stops right after ``run.json`` moved
    to ``history/``. The next command completes the change."""
    changed = write_experiment(work, high=248, name="changed.toml")
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if Path(src).name == "run.json" and Path(dst).parent.parent.name == "history":
            raise Killed

    monkeypatch.setattr(os, "replace", replace)
    try:
        main(["search", str(changed), "--trials", "8", "--allow-space-change", "--no-progress"])
    except Killed:
        pass
    monkeypatch.setattr(os, "replace", real)
    capsys.readouterr()
    code, _out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 0, err
    new = load_experiment(changed).fingerprint()
    assert _fingerprints(RUN) == (new, new)
    assert len(check_log(RUN)) == 24


def test_run_json_moved_away_by_an_older_version_names_the_fix(work: Path, capsys) -> None:
    """A run left by the old non-transactional change (run.json in history/, nothing
    pending): one line saying what to run, and following it works."""
    hist = RUN / "history" / "20260101T000000000000"
    hist.mkdir(parents=True)
    os.replace(RUN / "run.json", hist / "run.json")
    code, _out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 2
    one_line(err, str(RUN), "cp", str(hist / "run.json"), "--allow-space-change")
    shutil.copy2(hist / "run.json", RUN / "run.json")
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24


# ----------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_parquet_file_names_itself_and_export(work: Path, capsys, damage: str) -> None:
    part = sorted((RUN / "trials").glob("part-*.parquet"))[1]
    data = part.read_bytes()
    part.write_bytes({"garbage": b"not parquet at all " * 40, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    before = files(RUN)
    code, _out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 2
    one_line(err, str(part), "codesign export")
    assert files(RUN) == before  # nothing run, nothing written, the storage untouched
    with pytest.raises(ConfigError, match="codesign export"):
        _ = codesign.load_run(RUN).trials
    code, _out, err = cli(capsys, "export", str(RUN))
    assert code == 0, err
    assert len(check_log(RUN)) == 16
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24


BAD_RUN_JSON = {
    "garbage": (lambda t: "\x00\x17 garbage {{{", "<json>"),
    "truncated": (lambda t: t[: len(t) // 2], "<json>"),
    "not-an-object": (lambda t: "[1, 2]", "<json>"),
    "no-study": (lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "study"}),
                 "study"),
    "seed-text": (lambda t: json.dumps({**json.loads(t), "seed": "x"}), "seed"),
    "bad-sampler": (lambda t: json.dumps({**json.loads(t), "sampler": "nope"}), "sampler"),
    "no-experiment-file": (lambda t: json.dumps({**json.loads(t), "experiment": "gone.toml"}),
                           "experiment"),
}


@pytest.mark.parametrize("damage", BAD_RUN_JSON)
def test_a_bad_run_json_names_its_key_and_export_rebuilds_it(work: Path, capsys,
                                                             damage: str) -> None:
    path = RUN / "run.json"
    good = json.loads(path.read_text(encoding="utf-8"))
    mangle, key = BAD_RUN_JSON[damage]
    path.write_text(mangle(path.read_text(encoding="utf-8")), encoding="utf-8")
    bad = path.read_bytes()
    before = files(RUN)
    for command in (("pareto", str(RUN)), ("resume", str(RUN), "--trials", "8"),
                    ("compare", str(RUN), "--against", "h100-sxm")):
        code, _out, err = cli(capsys, *command)
        assert code == 2, (command, err)
        one_line(err, str(path), f": {key}: ", f"codesign export {RUN}")
        assert files(RUN) == before
    code, _out, err = cli(capsys, "doctor", str(RUN))  # no traceback: a verdict, or the line
    assert "Traceback" not in err and code in (0, 1, 2), err  # that names run.json's fix
    if code == 2:
        one_line(err, str(path), f"codesign export {RUN}")
    code, _out, err = cli(capsys, "export", str(RUN))
    assert code == 0, err
    kept = list(RUN.glob("run.json.bad-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == bad  # nothing is lost
    rebuilt = json.loads(path.read_text(encoding="utf-8"))
    for k in ("study", "storage", "fingerprint", "experiment", "sampler", "seed"):
        assert rebuilt[k] == good[k], k
    assert len(check_log(RUN)) == 16
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24


# ----------------------------------------------------------------------------- refused writes


def _refuse(code: int):
    def write_table(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError(code, os.strerror(code))
    return write_table


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left"),
                                        (errno.EACCES, "writable")])
def test_a_refused_log_write_during_a_search_loses_nothing(
        work: Path, capsys, monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> None:
    real = parquet_log.pq.write_table
    monkeypatch.setattr(parquet_log.pq, "write_table", _refuse(code))
    rc, _out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert rc == 2
    one_line(err, str(RUN / "trials"), words, f"codesign export {RUN}")
    assert len(complete(RUN)) == 24  # the trials are in the storage
    assert plain_rows(RUN) == list(range(16))  # the log as it was, no half file
    monkeypatch.setattr(parquet_log.pq, "write_table", real)
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 32


def test_a_full_disk_during_export_keeps_the_old_log(work: Path, capsys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = files(RUN)
    real = parquet_log.pq.write_table
    monkeypatch.setattr(parquet_log.pq, "write_table", _refuse(errno.ENOSPC))
    rc, _out, err = cli(capsys, "export", str(RUN))
    assert rc == 2
    one_line(err, "no space left", f"codesign export {RUN}")
    assert files(RUN) == before
    assert not (RUN / ".trials.new").exists()
    monkeypatch.setattr(parquet_log.pq, "write_table", real)
    assert cli(capsys, "export", str(RUN))[0] == 0
    assert len(check_log(RUN)) == 16


def test_a_full_disk_while_creating_a_run_is_one_line(tmp_path: Path, capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exp = write_experiment(tmp_path)
    real = Path.write_text

    def write_text(self: Path, *args, **kwargs):
        if self.name == "experiment.toml":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    rc, _out, err = cli(capsys, "search", str(exp), "--trials", "8")
    assert rc == 2
    one_line(err, str(RUN / "experiment.toml"), "no space left")


def test_a_run_directory_without_write_permission_is_one_line(
        work: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.access`` says no (what chmod a-w gives a user that is not root)."""
    real = os.access
    monkeypatch.setattr(rd.os, "access",
                        lambda p, mode, **kw: False if Path(p) == RUN else real(p, mode, **kw))
    before = files(RUN)
    for command in (("resume", str(RUN), "--trials", "8"), ("export", str(RUN))):
        rc, _out, err = cli(capsys, *command)
        assert rc == 2, (command, err)
        one_line(err, str(RUN), "writable", "chmod")
        assert files(RUN) == before


def test_a_read_only_run_directory_is_one_line(work: Path, capsys) -> None:
    """The real thing: chmod a-w (skipped where it has no effect, e.g. as root)."""
    modes = {p: p.stat().st_mode for p in [RUN, *RUN.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        if os.access(RUN, os.W_OK):
            pytest.skip("chmod a-w has no effect here (root)")
        before = files(RUN)
        for command in (("resume", str(RUN), "--trials", "8"), ("export", str(RUN))):
            rc, _out, err = cli(capsys, *command)
            assert rc == 2, (command, err)
            one_line(err, str(RUN), "writable")
            assert files(RUN) == before
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.parametrize(("code", "where", "command", "expected"), [
    (errno.ENOSPC, "append_logs", ("resume", str(RUN), "--trials", "8"), "free space"),
    (errno.EDQUOT, "append_logs", ("resume", str(RUN), "--trials", "8"), "quota"),
    (errno.EACCES, "__init__", ("export", str(RUN)), "may write"),
    (errno.EROFS, "__init__", ("resume", str(RUN), "--trials", "8"), "writable file system"),
])
def test_a_refused_journal_write_is_one_line_and_nothing_is_lost(
        work: Path, capsys, code: int, where: str,
        command: tuple[str, ...], expected: str) -> None:
    """Optuna's own journal append (no earlier check can see a disk fill up under it) or its
    opening of the journal for appending (a read-only run directory, as a user who is not
    root meets it) refused by the system: one line naming the journal, exit 2, no traceback;
    once mended, resume goes on and no stored trial is lost."""
    from codesign.search.journal.sums import ChecksummedJournalBackend

    journal = RUN / "study.log"

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(journal))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChecksummedJournalBackend, where, refuse)
        rc, _out, err = cli(capsys, *command)
    assert rc == 2, err
    one_line(err, str(journal), expected, "codesign resume")
    assert len(check_log(RUN)) == 16
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    assert len(check_log(RUN)) == 24
