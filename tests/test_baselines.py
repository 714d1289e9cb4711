"""Warm start from reference chips: projected, evaluated first, flagged, compared."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from codesign.catalog import get_chip
from codesign.cli import main
from codesign.config import load_experiment
from codesign.design import DEFAULT_DESIGN, project_chip
from codesign.rundir import load_run, open_storage
from codesign.space import distributions, project_params
from codesign.workers import BASELINE_ATTR

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
