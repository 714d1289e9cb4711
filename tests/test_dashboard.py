"""optuna-dashboard (0.21) against a codesign run: it names the objectives, reads each
trial's constraints, and its front, once infeasible trials are set aside, is ours.

The dashboard's "Best Trials" is the Pareto front of every COMPLETE trial, constraints
ignored (optuna-dashboard issue #772); it marks infeasible trials through the ``constraints``
list each trial carries. So: its feasible best trials are all on our front, and each design on
our front it lacks is dominated there by a trial it shows as infeasible, nothing else."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from optuna.trial import TrialState

from codesign.search.storage import rundir as rd
from tests.test_search import RUN, STUDY, cli, load, write_experiment

optuna_dashboard = pytest.importorskip("optuna_dashboard")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def dashboard(work: Path, capsys) -> Iterator[str]:
    """The dashboard serving a finished quickstart run on 127.0.0.1, a free port."""
    exp = write_experiment(work, trials=96)
    code, _, err = cli(capsys, "search", str(exp))
    assert code == 0, err
    _, run = rd.load_run(RUN)
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(rd.open_storage(run)),
                         handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as resp:
        return json.loads(resp.read())


def _dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    better = [x > y if d == "maximize" else x < y for x, y, d in zip(a, b, directions,
                                                                     strict=True)]
    worse = [x < y if d == "maximize" else x > y for x, y, d in zip(a, b, directions,
                                                                    strict=True)]
    return any(better) and not any(worse)


def test_dashboard_front_equals_codesign_pareto(dashboard: str, capsys) -> None:
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in studies if s["study_name"] == STUDY)
    detail = _get(f"{dashboard}/api/studies/{study_id}")
    exp, _ = rd.load_run(RUN)
    assert detail["objective_names"] == [o.metric for o in exp.objectives]

    study = load(RUN)
    ours = {t.number: t for t in study.trials}
    shown = {t["number"]: t for t in detail["trials"]}
    for n, t in ours.items():  # the dashboard reads every trial's constraints
        if t.state == TrialState.COMPLETE:
            assert shown[n]["constraints"] == list(t.constraints.values()), n
            assert shown[n]["constraints"]

    def feasible(number: int) -> bool:
        return all(c <= 0 for c in shown[number]["constraints"])

    assert any(not feasible(n) for n in shown if ours[n].state == TrialState.COMPLETE)
    best = {t["number"] for t in detail["best_trials"]}
    code, out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    front = {row["trial"] for row in json.loads(out)["front"]}
    assert front
    assert {n for n in best if feasible(n)} <= front
    directions = detail["directions"]
    infeasible_best = [ours[n].values for n in best if not feasible(n)]
    for n in front - best:
        assert any(_dominates(v, ours[n].values, directions) for v in infeasible_best), n
