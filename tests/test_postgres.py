"""Many workers on a real PostgreSQL server, the storage password never written down, every
storage URL form the README shows, and a missing database driver named as the extra to install.

The tests on a server need CODESIGN_TEST_PG_URL (scripts/test.sh starts the server with
scripts/postgres.sh and sets it); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

URL = os.environ.get("CODESIGN_TEST_PG_URL")
REPO = Path(__file__).resolve().parents[1]
CODESIGN = Path(sys.executable).with_name("codesign")
SECRET = "codesign-test-secret"

needs_server = pytest.mark.skipif(
    not URL, reason="CODESIGN_TEST_PG_URL is not set (scripts/test.sh starts PostgreSQL with "
                    "scripts/postgres.sh; it could not here)")


def experiment(tmp: Path) -> Path:
    space = REPO / "search_spaces" / "quickstart.toml"
    text = (REPO / "experiments" / "quickstart.toml").read_text().replace(
        'search_space = "../search_spaces/quickstart.toml"', f'search_space = "{space}"').replace(
        "population = 32", "population = 8")
    path = tmp / "exp.toml"
    path.write_text(text)
    return path


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120.0):
    return subprocess.run([str(CODESIGN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@needs_server
def test_four_workers_on_postgresql_run_every_trial_once(tmp_path: Path) -> None:
    import optuna

    exp = experiment(tmp_path)
    study = f"pg-{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen([str(CODESIGN), "worker", str(exp), "--storage", URL, "--study",
                               study, "--trials", "40", "--out", f"runs/w{k}", "--no-progress"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    s = optuna.load_study(study_name=study, storage=URL)
    numbers = sorted(t.number for t in s.trials)
    assert numbers == list(range(160))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in s.trials)
    rows = pd.concat([pd.read_parquet(tmp_path / f"runs/w{k}" / "trials") for k in range(4)])
    assert rows["trial"].is_unique and sorted(rows["trial"]) == numbers


@needs_server
def test_password_is_never_written(tmp_path: Path) -> None:
    assert SECRET in URL
    exp = experiment(tmp_path)
    study = f"pg-{uuid.uuid4().hex[:8]}"
    res = run("search", str(exp), "--storage", URL, "--study", study, "--trials", "16",
              "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout and SECRET not in res.stderr
    run_dir = tmp_path / "runs" / study
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    info = json.loads((run_dir / "run.json").read_text())
    assert "***" in info["storage"]
    # resuming needs the URL again: from the environment, as the message says
    res = run("resume", str(run_dir), "--trials", "8", "--no-progress", cwd=tmp_path)
    assert res.returncode == 2 and "CODESIGN_STORAGE_URL" in res.stderr
    res = run("resume", str(run_dir), "--trials", "8", "--no-progress", cwd=tmp_path,
              env={"CODESIGN_STORAGE_URL": URL})
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout + res.stderr
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


@needs_server
def test_dead_worker_on_postgresql_is_recovered_by_heartbeat(tmp_path: Path) -> None:
    """A worker that dies holding a RUNNING trial (an enqueued one: baselines and re-runs go
    through ask) is found by its stale heartbeat, failed, and re-run exactly once."""
    import time

    import optuna

    from codesign.search.experiment import load_experiment
    from codesign.search.storage.rundir import prepare_run
    from codesign.search.study import run_search
    from codesign.search.workers import RETRY_ATTR

    exp = load_experiment(experiment(tmp_path))
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    env = {"CODESIGN_HEARTBEAT_S": "1"}
    os.environ.update(env)
    try:
        run = prepare_run(exp, tmp_path / "runs" / "a", study_name, URL)
        run_search(exp, run, 8, progress=False)
        # a worker asks an enqueued trial, records one heartbeat, and dies
        storage = optuna.storages.RDBStorage(URL, heartbeat_interval=1, grace_period=2)
        s = optuna.load_study(study_name=study_name, storage=storage)
        s.enqueue_trial(s.trials[0].params)
        dying = s.ask()
        storage.record_heartbeat(dying._trial_id)
        time.sleep(3)
        run_b = prepare_run(exp, tmp_path / "runs" / "b", study_name, URL)
        run_search(exp, run_b, 8, progress=False)
        run_c = prepare_run(exp, tmp_path / "runs" / "c", study_name, URL)
        run_search(exp, run_c, 8, progress=False)
    finally:
        for k in env:
            os.environ.pop(k)
    s = optuna.load_study(study_name=study_name, storage=URL)
    assert s.trials[dying.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in s.trials if t.user_attrs.get(RETRY_ATTR) == dying.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert not [t for t in s.trials if t.state == optuna.trial.TrialState.RUNNING]


@needs_server
def test_four_workers_on_an_empty_database_create_its_tables_once(tmp_path: Path) -> None:
    """Four workers started together on a database without Optuna's tables (a new server, as
    on the first run of scripts/test.sh) race to create them: each must end well, not in a
    duplicate-type traceback. A schema of its own stands in for the empty database."""
    import sqlalchemy

    schema = f"fresh_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"{URL}?options=-csearch_path%3D{schema}"
        exp = experiment(tmp_path)
        procs = [subprocess.Popen([str(CODESIGN), "worker", str(exp), "--storage", url,
                                   "--study", "fresh", "--trials", "8", "--out", f"runs/w{k}",
                                   "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in range(4)]
        for p in procs:
            _out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
            assert "Traceback" not in err
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@needs_server
def test_spawned_workers_get_the_url_with_its_password_from_their_parent(
        tmp_path: Path) -> None:
    """``search --workers 2 --storage URL``: run.json holds the URL without its password, and
    the second worker process must not need CODESIGN_STORAGE_URL to find it."""
    exp = experiment(tmp_path)
    study = f"pg-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "CODESIGN_STORAGE_URL"}
    res = subprocess.run([str(CODESIGN), "search", str(exp), "--storage", URL, "--study", study,
                          "--trials", "16", "--workers", "2", "--no-progress"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stderr
    import optuna

    s = optuna.load_study(study_name=study, storage=URL)
    assert len(s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 16


# ----------------------------------------------------------------------------- URL forms

README_URL = re.compile(r"`((?:sqlite|postgresql)(?:\+\w+)?)://[^`]*`")


def readme_schemes() -> list[str]:
    """The database URL schemes the README shows (``postgresql``, ``postgresql+psycopg2``...)."""
    return sorted(set(README_URL.findall((REPO / "README.md").read_text(encoding="utf-8"))))


def test_the_readme_shows_the_url_forms_tested_here() -> None:
    assert {"sqlite", "postgresql", "postgresql+psycopg2"} <= set(readme_schemes())


def url_of(scheme: str, tmp_path: Path) -> str:
    """A URL of this scheme to the test server (or a SQLite file in ``tmp_path``)."""
    if scheme == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if not URL:
        pytest.skip("CODESIGN_TEST_PG_URL is not set (scripts/postgres.sh starts PostgreSQL)")
    return f"{scheme}://{URL.split('://', 1)[1]}"


@pytest.mark.parametrize("scheme", readme_schemes())
def test_every_readme_url_form_runs_a_search(tmp_path: Path, scheme: str) -> None:
    """Each storage URL form of the README, as written, opens a study that a search runs on
    (``postgresql://`` is psycopg 3 under SQLAlchemy 2.1: an ImportError traceback once)."""
    import optuna

    url = url_of(scheme, tmp_path)
    exp = experiment(tmp_path)
    study = f"form-{uuid.uuid4().hex[:8]}"
    res = run("search", str(exp), "--storage", url, "--study", study, "--trials", "8",
              "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    s = optuna.load_study(study_name=study, storage=url)
    assert len(s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8


@needs_server
def test_psycopg_url_form_opens_a_study(tmp_path: Path) -> None:
    """``postgresql+psycopg://`` (psycopg 3 named explicitly) opens through open_storage."""
    import optuna

    from codesign.search.storage.rundir import RunSpec, open_storage

    url = url_of("postgresql+psycopg", tmp_path)
    name = f"form-{uuid.uuid4().hex[:8]}"
    storage = open_storage(RunSpec(tmp_path, name, url, "random", 0))
    study = optuna.create_study(study_name=name, storage=storage)
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    assert optuna.load_study(study_name=name, storage=url).trials[0].params == {"x": 1.0}


# python -c HIDE MODULE codesign-args...: codesign with the Python module MODULE not installed
HIDE = """
import sys
sys.modules[sys.argv[1]] = None  # import MODULE raises ImportError, as if not installed
sys.argv = ["codesign", *sys.argv[2:]]
from codesign.cli import entry
entry()
"""


@pytest.mark.parametrize(("scheme", "module"), [("postgresql", "psycopg"),
                                                ("postgresql+psycopg2", "psycopg2")])
def test_missing_database_driver_is_exit_2_naming_the_extra(tmp_path: Path, scheme: str,
                                                            module: str) -> None:
    """Without the driver a URL maps to: one line naming the extra, exit 2, nothing created,
    no password shown (no server is needed: the driver is imported before connecting)."""
    exp = experiment(tmp_path)
    url = f"{scheme}://alice:{SECRET}@127.0.0.1:9/codesign"
    for command in (["search", str(exp)], ["worker", str(exp), "--study", "w"]):
        res = subprocess.run([sys.executable, "-c", HIDE, module, *command, "--storage", url,
                              "--trials", "8", "--no-progress"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        assert "pip install 'codesign[postgres]'" in res.stderr and module in res.stderr
        assert SECRET not in res.stdout + res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not (tmp_path / "runs").exists()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_unreachable_or_refusing_server_is_exit_2(tmp_path: Path, scheme: str) -> None:
    """No server at the URL (or, with one, a wrong password): one line with the reason, exit
    2, no password shown, nothing created; not an OperationalError traceback."""
    exp = experiment(tmp_path)
    urls = [f"{scheme}://alice:{SECRET}@127.0.0.1:{closed_port()}/codesign"]
    if URL:
        rest = URL.split("://", 1)[1].replace(SECRET, "not-the-password")
        urls.append(f"{scheme}://{rest}")
    for url in urls:
        res = run("search", str(exp), "--storage", url, "--trials", "8", "--no-progress",
                  cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert "--storage" in res.stderr and ("refused" in res.stderr or "failed" in res.stderr)
        assert SECRET not in res.stderr and "not-the-password" not in res.stderr
        assert not (tmp_path / "runs").exists()
