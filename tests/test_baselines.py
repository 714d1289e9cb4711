"""Warm start from reference chips: projected, evaluated first, flagged, compared."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from codesign.cli import main
from codesign.model.catalog import get_chip
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.design import DEFAULT_DESIGN, project_chip
from codesign.search.experiment import load_experiment
from codesign.search.space import distributions, project_params
from codesign.search.storage.rundir import load_run, open_storage

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "experiments" / "inference_llama70b.toml"


def test_projection_lands_inside_every_distribution() -> None:
    exp = load_experiment(SERVING)
    dists = distributions(exp.space)
    for chip_id in ("h100-sxm", "a100-sxm-80gb", "maia100", "mi300x", "gaudi3"):
        params = project_params(exp.space, project_chip(get_chip(chip_id)))
        for name, value in params.items():
            assert dists[name]._contains(dists[name].to_internal_repr(value)), (chip_id, name)


def test_h100_projection_keeps_its_resources() -> None:
    design = project_chip(get_chip("h100-sxm"))
    assert design["compute_units"] == 132 and design["macs_per_unit"] == 2048
    assert design["hbm_gen"] == "HBM3" and design["hbm_stacks"] == 5
    assert design["scaleup_link_gbps"] == pytest.approx(50.0)
    assert set(design) == set(DEFAULT_DESIGN)


def test_baselines_run_first_once_and_are_flagged(tmp_path: Path, capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = SERVING.read_text().replace(
        'search_space = "../search_spaces/inference_2027.toml"',
        f'search_space = "{REPO / "search_spaces" / "inference_2027.toml"}"').replace(
        'baselines = ["h100-sxm"]', 'baselines = ["h100-sxm", "a100-sxm-80gb"]')
    exp = tmp_path / "serve.toml"
    exp.write_text(text)
    assert main(["search", str(exp), "--trials", "40", "--no-progress"]) == 0
    assert main(["resume", "runs/inference_llama70b", "--trials", "8", "--no-progress"]) == 0
    capsys.readouterr()
    _, run = load_run("runs/inference_llama70b")
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    flagged = [t for t in study.trials if BASELINE_ATTR in t.user_attrs]
    assert sorted((t.number, t.user_attrs[BASELINE_ATTR]) for t in flagged) == [
        (0, "h100-sxm"), (1, "a100-sxm-80gb")]  # first, once, not again on resume
    df = pd.read_parquet("runs/inference_llama70b/trials")
    assert sorted(df.loc[df.is_baseline, "baseline"]) == ["a100-sxm-80gb", "h100-sxm"]
    assert main(["pareto", "runs/inference_llama70b", "--format", "json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front
    h100 = next(t for t in flagged if t.user_attrs[BASELINE_ATTR] == "h100-sxm")
    for row in front:
        ratio = row["tokens_per_joule_vs_h100-sxm"]
        if ratio is not None:
            assert ratio == pytest.approx(row["value_tokens_per_joule"] / h100.values[0])
        assert "silicon_mm2_vs_a100-sxm-80gb" in row


EIGHT = ("h100-sxm", "a100-sxm-80gb", "h200", "b200", "mi300x", "gaudi3", "tpu-v5p", "maia100")
_HANG = """
import sys, threading
from pathlib import Path
import codesign.search.study as st
def hang(*args, **kwargs):
    Path(sys.argv[2]).write_text("evaluating")
    threading.Event().wait()
st.evaluate_designs = hang
from codesign.cli import main
sys.exit(main(["search", sys.argv[1], "--trials", "8", "--no-progress"]))
"""


def _quickstart_with_baselines(folder: Path, baselines: tuple[str, ...]) -> Path:
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    text = text.replace('"../search_spaces/quickstart.toml"',
                        f'"{REPO / "search_spaces" / "quickstart.toml"}"')
    text = text.replace('search_space =', f"baselines = {json.dumps(list(baselines))}\n"
                        "search_space =", 1)
    text = text.replace("population = 32", "population = 8").replace("trials = 960",
                                                                     "trials = 16")
    path = folder / "qs.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["resume", "two workers"])
def test_baselines_killed_while_running_keep_their_identity(tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           how: str) -> None:
    """kill -9 while the 8 baseline trials are RUNNING (the child blocks inside the
    evaluation, so the kill always lands there), then resume (or search on with two worker
    processes): every baseline is re-run once, flagged, and `pareto` keeps its
    <objective>_vs_<chip> columns."""
    import os
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.chdir(tmp_path)
    exp = _quickstart_with_baselines(tmp_path, EIGHT)
    marker = tmp_path / "evaluating"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _HANG, str(exp), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert child.poll() is None, "the search ended before evaluating"
            assert time.monotonic() < deadline, "the child never started evaluating"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    _, run = load_run("runs/quickstart")
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sorted(t.user_attrs[BASELINE_ATTR] for t in running) == sorted(EIGHT)

    if how == "resume":
        assert main(["resume", "runs/quickstart", "--trials", "16", "--no-progress"]) == 0
    else:
        assert main(["search", str(exp), "--trials", "16", "--workers", "2",
                     "--no-progress"]) == 0
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    assert not [t for t in study.trials if t.state in (optuna.trial.TrialState.RUNNING,
                                                         optuna.trial.TrialState.WAITING)]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
            or "fail_reason" in t.user_attrs]
    assert sorted(t.user_attrs.get(BASELINE_ATTR) for t in done
                  if BASELINE_ATTR in t.user_attrs) == sorted(EIGHT)  # each once
    df = pd.read_parquet("runs/quickstart/trials")
    assert sorted(df.loc[df.is_baseline, "baseline"]) == sorted(
        t.user_attrs[BASELINE_ATTR] for t in done
        if BASELINE_ATTR in t.user_attrs and t.state == optuna.trial.TrialState.COMPLETE)
    assert df.is_baseline.any()
    capsys.readouterr()
    assert main(["pareto", "runs/quickstart", "--format", "json"]) == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and all(f"tokens_per_s_vs_{b}" in row for row in front
                         for b in df.loc[df.is_baseline, "baseline"])


def test_baselines_interrupted_before_running_are_queued_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A baseline trial that ended FAIL without being evaluated (interrupted) is queued again
    on the next start, once, and a second start queues nothing."""
    from codesign.search.baselines import enqueue_baselines

    monkeypatch.chdir(tmp_path)
    exp_path = _quickstart_with_baselines(tmp_path, EIGHT[:3])
    assert main(["search", str(exp_path), "--trials", "1", "--no-progress"]) == 0
    exp, run = load_run("runs/quickstart")
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 2  # two baselines never ran yet
    for t in waiting:  # as a KeyboardInterrupt leaves them
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.RUNNING)
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    assert sorted(enqueue_baselines(exp, run, study)) == sorted(
        t.user_attrs[BASELINE_ATTR] for t in waiting)
    assert enqueue_baselines(exp, run, study) == []
