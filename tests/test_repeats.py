"""A design already in the study is never evaluated again, the front lists each design once,
and the run reports how many proposals were repeats (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from codesign.search import study as st
from codesign.search.front import front_trials
from codesign.search.repeats import REDRAWS_ATTR, REPEAT_ATTR, DesignIndex
from codesign.search.storage.rundir import METRICS_ATTR, WRITER_KEY
from tests.test_search import RUN, cli, load, write_experiment


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _params(df: pd.DataFrame) -> pd.DataFrame:
    return df[sorted(c for c in df if c.startswith("param_"))]


def test_no_design_is_evaluated_twice_and_repeats_are_counted(work: Path, capsys) -> None:
    exp = write_experiment(work, trials=160)
    code, out, err = cli(capsys, "search", str(exp), "--json")
    assert code == 0, err
    summary = json.loads(out)
    study = load(RUN)
    evaluated = [t for t in study.trials
                 if t.state == TrialState.COMPLETE and REPEAT_ATTR not in t.user_attrs]
    keys = [tuple(sorted(t.params.items())) for t in evaluated]
    assert len(set(keys)) == len(keys)  # each design evaluated once
    # NSGA-II's children repeat their parents often in this space: they are drawn again
    assert summary["repeats"] > 0
    df = pd.read_parquet(RUN / "trials")
    assert len(_params(df).drop_duplicates()) == len(df) - sum(
        REPEAT_ATTR in t.user_attrs for t in study.trials)
    code, out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 0 and "repeats: " in out and "proposals repeated" in out, out


def test_an_enqueued_repeat_takes_the_stored_result(work: Path, capsys,
                                                    monkeypatch) -> None:
    exp = write_experiment(work, trials=16)
    assert cli(capsys, "search", str(exp))[0] == 0
    study = load(RUN)
    first = study.trials[3]
    study.enqueue_trial(first.params)  # e.g. a user's warm start naming a design again
    seen = []
    real = st.evaluate_designs

    def spy(designs, *args, **kwargs):
        seen.extend(designs)
        return real(designs, *args, **kwargs)

    monkeypatch.setattr(st, "evaluate_designs", spy)
    code, out, err = cli(capsys, "resume", str(RUN), "--trials", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["repeats"] >= 1
    study = load(RUN)
    again = study.trials[16]
    assert again.params == first.params and again.user_attrs[REPEAT_ATTR] == first.number
    assert again.values == first.values and again.constraints == first.constraints
    base = st.base_design(st.load_run(RUN)[0])
    assert st.design_from_params(base, first.params) not in seen  # not evaluated again


def test_the_front_lists_each_design_once(work: Path, capsys) -> None:
    """A study holding repeats (runs before this fix) shows each design once."""
    exp = write_experiment(work, trials=24)
    assert cli(capsys, "search", str(exp))[0] == 0
    _, out, _ = cli(capsys, "pareto", str(RUN), "--format", "json")
    before = json.loads(out)["front"]
    study = load(RUN)
    for row in before:  # a copy of every front design, as the old loop evaluated them
        t = study.trials[row["trial"]]
        study.add_trial(optuna.trial.create_trial(
            params=t.params, distributions=t.distributions, values=t.values,
            user_attrs=t.user_attrs, system_attrs=t.system_attrs))
    _, out, _ = cli(capsys, "pareto", str(RUN), "--format", "json")
    after = json.loads(out)["front"]
    assert [r["trial"] for r in after] == [r["trial"] for r in before]
    assert len(front_trials(load(RUN))) == len(before)


def test_design_index_reads_each_trial_about_once() -> None:
    study = optuna.create_study(directions=["minimize"])
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    index = DesignIndex(dist)
    running = study.ask(dist)
    study.add_trial(optuna.trial.create_trial(params={"x": 1}, distributions=dist, values=[1.0]))
    index.update(study.get_trials(deepcopy=False))
    assert index.stored({"x": 1}).number == 1 and index.stored({"x": running.params["x"]}) in (
        None, study.trials[1])
    study.tell(running, [0.0])
    index.update(study.get_trials(deepcopy=False))
    assert index.stored({"x": running.params["x"]}) is not None
    assert index._scanned == 2 and not index._open


def test_design_index_tells_designs_apart_whose_keys_hash_alike() -> None:
    """The index holds trials by the hash of their key: two designs whose keys collide
    (``hash(-1) == hash(-2)`` in CPython, so their 1-tuples do too) are both found, each as
    itself, and a design absent under a held hash is absent."""
    assert hash((-1,)) == hash((-2,))
    study = optuna.create_study(directions=["minimize"])
    dist = {"x": optuna.distributions.IntDistribution(-9, 9)}
    for x in (-1, -2, -1):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dist,
                                                  values=[float(x)]))
    index = DesignIndex(dist)
    index.update(study.get_trials(deepcopy=False))
    assert index.stored({"x": -1}).number == 0 and index.stored({"x": -2}).number == 1
    assert (-1,) in index and (-3,) not in index and len(index) == 2
    assert index.stored({"x": 5}) is None


def test_every_worker_s_repeats_are_counted_and_recorded(work: Path, capsys) -> None:
    """The summary of a run with two worker processes counts both workers' repeats, as the
    trials record them (``codesign:redraws`` / ``codesign:repeat_of``)."""
    exp = write_experiment(work, trials=160)
    code, out, err = cli(capsys, "search", str(exp), "--workers", "2", "--json")
    assert code == 0, err
    study = load(RUN)
    recorded = sum(t.user_attrs.get(REDRAWS_ATTR, 0) + (REPEAT_ATTR in t.user_attrs)
                   for t in study.trials)
    assert json.loads(out)["repeats"] == recorded > 0
    # each worker draws against every design stored when its population starts, its own
    # included (two workers may still evaluate one design in the same moment, rarely)
    by_writer: dict[str, list[tuple]] = {}
    for t in study.trials:
        if t.state == TrialState.COMPLETE and REPEAT_ATTR not in t.user_attrs:
            writer = t.user_attrs[METRICS_ATTR][WRITER_KEY]
            by_writer.setdefault(writer, []).append(tuple(sorted(t.params.items())))
    assert len(by_writer) == 2
    for designs in by_writer.values():
        assert len(set(designs)) == len(designs)


def test_an_exhausted_space_reuses_stored_results(work: Path, capsys, monkeypatch) -> None:
    """A space of 4 designs and 16 trials: after the 4, every proposal repeats; none is
    evaluated again, each takes its design's stored result."""
    space = (("type = \"int\"\nlow = 64\nhigh = 256\nstep = 4", "type = \"int\"\nlow = 64\n"
              "high = 68\nstep = 4"),)
    exp = write_experiment(work, trials=16, population=4, sampler="random", space_edits=space)
    space_text = (work / "space.toml").read_text(encoding="utf-8")
    # keep only compute_units (2 values) and hbm_gen (2 values) searched
    kept = ("compute_units", "hbm_gen")
    blocks = space_text.split("[params.")
    space_text = blocks[0] + "".join("[params." + b for b in blocks[1:]
                                     if b.split("]")[0] in kept)
    (work / "space.toml").write_text(space_text, encoding="utf-8")
    counted = []
    real = st.evaluate_designs

    def spy(designs, *args, **kwargs):
        counted.extend(designs)
        return real(designs, *args, **kwargs)

    monkeypatch.setattr(st, "evaluate_designs", spy)
    code, out, err = cli(capsys, "search", str(exp), "--json")
    assert code == 0, err
    study = load(RUN)
    assert len(study.trials) == 16
    keys = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(keys) == 4 and len(counted) == 4
    assert sum(REPEAT_ATTR in t.user_attrs for t in study.trials) == 12
    assert json.loads(out)["repeats"] >= 12
