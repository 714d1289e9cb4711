"""Every sampler the README lists runs the quickstart through the CLI (a short run: few
trials, a small population, two populations so the sampler sees finished trials), and an
optional dependency that is missing is a clean exit 2 naming the extra."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from codesign.search.experiment import SAMPLERS
from tests.test_search import RUN, cli, load, write_experiment


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path

REPO = Path(__file__).resolve().parents[1]
GP_READY = all(importlib.util.find_spec(m) for m in ("torch", "scipy"))


def test_every_readme_sampler_is_tested() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in SAMPLERS:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampler_runs_the_quickstart(work: Path, capsys, sampler: str) -> None:
    exp = write_experiment(work, trials=16, population=4, sampler=sampler)
    if sampler == "gp" and not GP_READY:
        code, out, err = cli(capsys, "search", str(exp))
        assert code == 2, err
        assert "codesign[gp]" in err and "torch" in err and "Traceback" not in err
        assert not RUN.exists()  # nothing created
        return
    code, out, err = cli(capsys, "search", str(exp))
    assert code == 0, err
    code, out, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 0, err
    study = load(RUN)
    by_state = [t.state for t in study.trials]
    assert len(by_state) == 24 and TrialState.RUNNING not in by_state
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(pd.read_parquet(RUN / "trials")) == len(complete) > 0
    code, out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0 and json.loads(out)["front"], err
