"""Many workers on a real PostgreSQL server, and the storage password never written down.

Needs CODESIGN_TEST_PG_URL (scripts/test.sh starts the server with scripts/postgres.sh and sets
it); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
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

pytestmark = pytest.mark.skipif(
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


def test_dead_worker_on_postgresql_is_recovered_by_heartbeat(tmp_path: Path) -> None:
    """A worker that dies holding a RUNNING trial (an enqueued one: baselines and re-runs go
    through ask) is found by its stale heartbeat, failed, and re-run exactly once."""
    import time

    import optuna

    from codesign.config import load_experiment
    from codesign.rundir import prepare_run
    from codesign.study import run_search
    from codesign.workers import RETRY_ATTR

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
