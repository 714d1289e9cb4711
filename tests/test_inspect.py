"""codesign.results.inspect: the notebook API (``codesign.load_run``) and the analysis tables.

Two small real runs are made once per module with the CLI: the quickstart experiment with two
reference-chip baselines (most tests), and a tiny space full of ties and duplicates into which
trials are also written by hand (the front test). Expected values are always computed here
from the Optuna study (the truth) or from the model, never typed in.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from cli_helpers import run as cli
from cli_helpers import run_json
from optuna.trial import TrialState

import codesign
from codesign.cli import main
from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.model.perf import evaluate, result_metrics, sized_cluster
from codesign.results.hypervolume import _hv_history, _hypervolume
from codesign.results.inspect import (
    HV_REFERENCE,
    REPORTED_METRICS,
    Run,
    hypervolume_history,
    infeasible_reasons,
    neighbours,
    sensitivity,
)
from codesign.search import parquet_log
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.design import design_area, design_to_chip, design_to_cluster
from codesign.search.experiment import ParamSpec
from codesign.search.repeats import unique_designs
from codesign.search.space import base_design, cluster_extra, design_from_params, distributions
from codesign.search.storage import rundir as rd

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("h100-sxm", "a100-sxm-80gb")


def quickstart_text(name: str, trials: int, population: int, sampler: str = "nsga2") -> str:
    """The quickstart experiment under another name and budget, its space by absolute path."""
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in (
        ('name = "quickstart"', f'name = "{name}"'),
        ('"../search_spaces/quickstart.toml"',
         f'"{(REPO / "search_spaces" / "quickstart.toml").as_posix()}"'),
        ("trials = 960", f"trials = {trials}"),
        ("population = 32", f"population = {population}"),
        ('sampler = "nsga2"', f'sampler = "{sampler}"'),
    ):
        assert old in text, f"test bug: {old!r} not in quickstart.toml"
        text = text.replace(old, new, 1)
    return text


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in t.constraints.values())


@pytest.fixture(scope="module", autouse=True)
def _file_per_population(file_per_population: None) -> None:
    """A Parquet file for every population (conftest.file_per_population)."""


@pytest.fixture(scope="module")
def qs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-trial quickstart run with two reference-chip baselines (trials 0 and 1)."""
    folder = tmp_path_factory.mktemp("inspect")
    text = quickstart_text("qsi", 64, 16)
    text = text.replace("\n[workload]", f"baselines = {json.dumps(BASELINES)}\n\n[workload]", 1)
    exp = folder / "exp.toml"
    exp.write_text(text, encoding="utf-8")
    assert main(["search", str(exp), "--trials", "64", "--out", str(folder / "run"),
                 "--no-progress"]) == 0
    return folder / "run"


@pytest.fixture
def run(qs: Path) -> Run:
    return codesign.load_run(qs)


# ----------------------------------------------------------------------------- Run


def test_load_run_attributes(run: Run, qs: Path) -> None:
    assert codesign.load_run is codesign.results.inspect.load_run and isinstance(run, Run)
    assert run.path == qs and run.name == "qsi"
    assert run.experiment.name == "qsi"
    assert run.study.study_name == "qsi"
    assert run.objectives == [(o.metric, o.direction) for o in run.experiment.objectives]
    assert [d.name.lower() for d in run.study.directions] == [d for _, d in run.objectives]
    text = repr(run)
    n = len(complete(run.study))
    n_ok = sum(feasible(t) for t in complete(run.study))
    assert "qsi" in text and f"{n} complete trials ({n_ok} feasible)" in text
    for metric, direction in run.objectives:
        assert f"{direction} {metric}" in text


def test_load_run_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.json"):
        codesign.load_run(tmp_path)


def test_trials_are_the_complete_trials_of_the_study(run: Run) -> None:
    trials = complete(run.study)
    df = run.trials
    assert len(df) == len(trials)
    assert df["trial"].tolist() == sorted(t.number for t in trials)
    by_number = df.set_index("trial")
    for t in trials:
        for (metric, _), value in zip(run.objectives, t.values, strict=True):
            assert by_number.at[t.number, f"value_{metric}"] == value
        assert bool(by_number.at[t.number, "constraints_ok"]) == feasible(t)
    assert list(df.columns) == parquet_log.schema(run.experiment).names


def test_baselines_are_the_reference_chip_trials(run: Run) -> None:
    flagged = {t.number: t.user_attrs[BASELINE_ATTR] for t in complete(run.study)
               if BASELINE_ATTR in t.user_attrs}
    assert sorted(flagged.values()) == sorted(BASELINES)
    base = run.baselines
    assert dict(zip(base["trial"], base["baseline"], strict=True)) == flagged
    assert base["is_baseline"].all()


def test_best_is_the_best_feasible_trial_in_each_direction(run: Run) -> None:
    trials = complete(run.study)
    ignoring_constraints_differs = False
    for i, (metric, direction) in enumerate(run.objectives):
        sign = -1.0 if direction == "maximize" else 1.0
        ok = [t for t in trials if feasible(t)]
        want = min(ok, key=lambda t, i=i, sign=sign: (sign * t.values[i], t.number))
        got = run.best(metric)
        assert int(got["trial"]) == want.number
        assert got[f"value_{metric}"] == want.values[i]
        assert bool(got["constraints_ok"])
        anyway = min(trials, key=lambda t, i=i, sign=sign: (sign * t.values[i], t.number))
        ignoring_constraints_differs |= anyway.number != want.number
    # the run is one where ignoring feasibility would pick another trial (else this test
    # could not see a best() that ignores it)
    assert ignoring_constraints_differs


def test_best_names_the_valid_objectives(run: Run) -> None:
    with pytest.raises(ValueError, match="not an objective") as err:
        run.best("tflops")
    for metric, _ in run.objectives:
        assert metric in str(err.value)


def test_pareto_is_the_constraint_aware_front(run: Run) -> None:
    want = {t.number for t in run.study.best_trials}
    assert want and set(run.pareto["trial"]) == want
    assert run.pareto["constraints_ok"].all()
    assert any(c.startswith(f"{run.objectives[0][0]}_vs_") for c in run.pareto.columns)


# ----------------------------------------------------------------------------- front: ties


TINY_SPACE = """
[space]
name = "tiny"
description = "few designs: many exact duplicates and ties"

[base]
process_nm = 4
fp8_speedup = 2
scaleup_link_gbps = 50.0
scaleout_gbps = 400.0

[params.macs_per_unit]
type = "categorical"
choices = [1024, 2048, 4096]

[params.hbm_gen]
type = "categorical"
choices = ["HBM3", "HBM3e"]

[params.hbm_stacks]
type = "int"
low = 4
high = 6

[params.scaleup_domain]
type = "categorical"
choices = [8, 16]
"""


@pytest.fixture(scope="module")
def ties(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-trial random search of 36 designs (repeats; same area for either HBM generation),
    plus hand-written trials: an exact copy of a front trial, a copy worse in one objective
    only, and an infeasible trial that dominates every other one."""
    folder = tmp_path_factory.mktemp("ties")
    (folder / "tiny.toml").write_text(TINY_SPACE, encoding="utf-8")
    text = quickstart_text("ties", 40, 8, sampler="random")
    text = text.replace(f'"{(REPO / "search_spaces" / "quickstart.toml").as_posix()}"',
                        '"tiny.toml"')
    text = text.replace('tokens_per_joule = "maximize"\n', "")  # 2 objectives: rate, area
    (folder / "exp.toml").write_text(text, encoding="utf-8")
    run_dir = folder / "run"
    assert main(["search", str(folder / "exp.toml"), "--trials", "40", "--out", str(run_dir),
                 "--no-progress"]) == 0
    exp, spec = rd.load_run(run_dir)
    study = optuna.load_study(study_name=spec.study_name, storage=rd.open_storage(spec))
    dists = distributions(exp.space)
    front = sorted(study.best_trials, key=lambda t: t.number)
    assert front, "the tiny search found no feasible design"
    top = front[0]
    metrics = {k: v for k, v in top.user_attrs[rd.METRICS_ATTR].items() if k != rd.WRITER_KEY}

    def add(values: list[float], m: dict, note: str) -> None:
        study.add_trial(optuna.trial.create_trial(
            params=top.params, distributions=dists, values=values,
            user_attrs={rd.METRICS_ATTR: m, "test": note},
            system_attrs={f"constraints:{k}": v for k, v in rd.constraint_values(exp, m).items()}))

    add(list(top.values), metrics, "exact duplicate")
    worse = dict(metrics, silicon_mm2=metrics["silicon_mm2"] * 1.5)
    add(rd.objective_values(exp, worse), worse, "tie in tokens_per_s, more area")
    bad = dict(metrics, feasible=False, reason="injected: infeasible",
               tokens_per_s=max(t.values[0] for t in complete(study)) * 10,
               silicon_mm2=min(t.values[1] for t in complete(study)) / 10)
    add(rd.objective_values(exp, bad), bad, "infeasible, dominates all")
    added = [t for t in complete(study) if "test" in t.user_attrs]
    parquet_log.write_trials(run_dir, exp, [rd.row_from_trial(exp, t, "test") for t in added],
                             "test")
    return run_dir


def test_front_with_ties_duplicates_and_infeasible_points(ties: Path, capsys) -> None:
    run = codesign.load_run(ties)
    study = run.study
    injected = {t.user_attrs["test"]: t for t in complete(study) if "test" in t.user_attrs}
    optuna_best = study.best_trials
    best = {t.number for t in unique_designs(optuna_best)}
    # Optuna 5's best_trials is constraint-aware: the infeasible point dominating all is out
    assert injected["infeasible, dominates all"].number not in best
    assert injected["tie in tokens_per_s, more area"].number not in best
    # an exact copy of a front design (an older run's repeat) is on Optuna's front, but the
    # front lists each design once: its first trial
    assert injected["exact duplicate"].number in {t.number for t in optuna_best}
    assert injected["exact duplicate"].number not in best
    values = [tuple(t.values) for t in complete(study) if feasible(t)]
    assert len(set(values)) < len(values)
    designs = [tuple(sorted(t.params.items())) for t in optuna_best]
    shown = [tuple(sorted(t.params.items())) for t in optuna_best if t.number in best]
    assert sorted(set(designs)) == sorted(shown)  # every front design, once

    assert set(run.pareto["trial"]) == best
    doc = run_json(capsys, "pareto", str(ties), "--format", "json")
    assert {row["trial"] for row in doc["front"]} == best
    code, out, err = cli(capsys, "pareto", str(ties))
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:1] == ["trial"])
    table = [int(line.split()[0]) for line in lines[head + 1:]
             if line.split()[:1] and line.split()[0].isdigit()]
    assert sorted(table) == sorted(best) and len(table) == len(best)


# ----------------------------------------------------------------------------- hypervolume


def union_volume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume of the union of the boxes [p, ref] (minimisation), by cutting space into
    the cells of the points' coordinates: independent of the code under test."""
    axes = [np.unique(np.append(points[:, j], ref[j])) for j in range(points.shape[1])]
    lows = np.stack([g.ravel() for g in np.meshgrid(*[a[:-1] for a in axes], indexing="ij")], 1)
    size = np.prod(np.stack([g.ravel() for g in np.meshgrid(*[np.diff(a) for a in axes],
                                                            indexing="ij")], 1), axis=1)
    covered = np.zeros(len(lows), bool)
    for p in points:
        covered |= np.all(lows >= p, axis=1)
    return float(size[covered].sum())


def test_hypervolume_history_rises_to_the_front_s_hypervolume(run: Run) -> None:
    hv = hypervolume_history(run)
    assert len(hv) == len(run.trials)  # fewer trials than checkpoints: one row per trial
    assert hv["trial"].tolist() == run.trials["trial"].tolist()
    assert (np.diff(hv["hypervolume"]) >= 0).all()
    assert hv["hypervolume"].iloc[-1] > hv["hypervolume"].iloc[0] >= 0
    # direct: normalise the study's final front by its feasible trials, union of boxes
    ok = [t for t in complete(run.study) if feasible(t)]
    sign = np.array([-1.0 if d == "maximize" else 1.0 for _, d in run.objectives])
    loss = np.array([t.values for t in ok]) * sign
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    front = (np.array([t.values for t in run.study.best_trials]) * sign - lo) / (hi - lo)
    ref = np.full(len(sign), HV_REFERENCE)
    box = HV_REFERENCE ** len(sign)
    assert hv["hypervolume"].iloc[-1] == pytest.approx(union_volume(front, ref) / box, rel=1e-9)
    assert hv["n_feasible"].iloc[-1] == len(ok)
    assert hv["n_complete"].iloc[-1] == len(complete(run.study))
    coarse = hypervolume_history(run, max_points=10)
    assert len(coarse) <= 10 and coarse["trial"].iloc[-1] == hv["trial"].iloc[-1]
    assert coarse["hypervolume"].iloc[-1] == hv["hypervolume"].iloc[-1]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_matches_the_union_of_boxes(k: int) -> None:
    rng = np.random.default_rng(k)
    pts = rng.random((12, k))
    keep = [i for i in range(len(pts))
            if not any(np.all(pts[j] <= pts[i]) and np.any(pts[j] < pts[i])
                       for j in range(len(pts)))]
    ref = np.full(k, HV_REFERENCE)
    assert _hypervolume(pts[keep], ref) == pytest.approx(union_volume(pts[keep], ref), rel=1e-12)


def test_hypervolume_history_of_20k_trials_is_fast_and_monotone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast by construction, not by a stopwatch (CI is a loaded box): one exact hypervolume
    per checkpoint at most, each by the three-objective sweep, never Optuna's WFG."""
    import optuna._hypervolume as optuna_hv

    from codesign.results import hypervolume as hv_mod

    calls: list[int] = []
    real = hv_mod._hypervolume

    def counted(front: np.ndarray, ref: np.ndarray) -> float:
        calls.append(len(front))
        return real(front, ref)

    def no_wfg(*args: object, **kwargs: object) -> float:
        raise AssertionError("three objectives must not take Optuna's WFG")

    monkeypatch.setattr(hv_mod, "_hypervolume", counted)
    monkeypatch.setattr(optuna_hv, "compute_hypervolume", no_wfg)
    rng = np.random.default_rng(0)
    n = 20_000
    # a curved trade-off with noise: a front of a few hundred points, as a long NSGA run has
    x = rng.random((n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True) ** rng.uniform(0.8, 1.0, (n, 1))
    df = pd.DataFrame({"trial": np.arange(n), "constraints_ok": rng.random(n) < 0.7,
                       "value_a": x[:, 0], "value_b": x[:, 1], "value_c": -x[:, 2]})
    objectives = [("a", "maximize"), ("b", "maximize"), ("c", "minimize")]
    hv = _hv_history(df, objectives, 200)
    assert 0 < len(calls) <= 200, len(calls)
    assert len(hv) <= 200 and hv["trial"].iloc[-1] == n - 1 and hv["trial"].iloc[0] == 0
    assert (np.diff(hv["hypervolume"]) >= 0).all() and hv["hypervolume"].iloc[-1] > 0


# ----------------------------------------------------------------------------- infeasibility


def test_infeasible_reasons_count_every_infeasible_trial_once(run: Run) -> None:
    df = run.trials
    bad = df[~df["constraints_ok"]]
    reasons = infeasible_reasons(run)
    assert reasons["count"].sum() == len(bad) > 0
    assert reasons["share"].sum() == pytest.approx(1.0)
    assert (np.diff(reasons["count"]) <= 0).all()
    model = reasons[reasons["kind"] == "model"]
    assert model["count"].sum() == (~bad["feasible"]).sum()
    counts = bad.loc[~bad["feasible"], "reason"].value_counts()
    for reason, count in zip(model["reason"], model["count"], strict=True):
        assert counts[reason] == count  # the model's text, as given
    for reason in reasons.loc[reasons["kind"] == "constraint", "reason"]:
        assert all(part.split(" ")[0] in {c.metric for c in run.experiment.constraints}
                   for part in reason.split(", "))
    by_cat = infeasible_reasons(run, by="category")
    assert by_cat["count"].sum() == len(bad) and len(by_cat) <= len(reasons)
    with pytest.raises(ValueError, match="by"):
        infeasible_reasons(run, by="chip")


# ----------------------------------------------------------------------------- sensitivity


def test_neighbours_follow_the_search_space() -> None:
    units = ParamSpec("compute_units", "int", 64, 256, step=4)
    assert neighbours(units, 64) == [68] and neighbours(units, 132) == [128, 136]
    clock = ParamSpec("clock_ghz", "float", 1.0, 2.2, step=0.05)
    assert neighbours(clock, 1.9) == [1.85, 1.95]
    assert neighbours(clock, 2.2) == [2.15]
    sram = ParamSpec("sram_mb", "float", 16.0, 512.0, log=True)
    assert neighbours(sram, 100.0) == [80.0, 125.0] and neighbours(sram, 500.0) == [400.0, 512.0]
    logint = ParamSpec("n_chips", "int", 1, 1000, log=True)
    assert neighbours(logint, 2) == [1, 3] and neighbours(logint, 100) == [80, 125]
    gen = ParamSpec("hbm_gen", "categorical", choices=("HBM3", "HBM3e", "HBM4"))
    assert neighbours(gen, "HBM3e") == ["HBM3", "HBM4"]


def test_sensitivity_re_evaluates_each_variant(run: Run) -> None:
    exp = run.experiment
    design_row = run.best("tokens_per_joule")
    df = sensitivity(run, int(design_row["trial"]))
    params = [p.name for p in exp.space.params]
    assert set(df["param"]) == set(params)
    assert len(df) == sum(len(neighbours(p, design_row[f"param_{p.name}"]))
                          for p in exp.space.params)
    info = df.attrs["design"]
    assert info["trial"] == int(design_row["trial"]) and info["matches_stored"]
    shown = list(dict.fromkeys([m for m, _ in run.objectives] + list(REPORTED_METRICS)))
    for metric in shown:
        assert info["metrics"][metric] == pytest.approx(design_row[metric], rel=1e-12)
    # one variant, evaluated directly through codesign.model.perf.evaluate (the single-design path)
    base = base_design(exp)
    variants = [(row, design_from_params(base, {**info["params"], row["param"]: row["to"]}))
                for _, row in df.iterrows()]
    row, design = next((r, d) for r, d in variants if not design_area(d).reason)
    chip = design_to_chip(design)
    cluster = design_to_cluster(design, cluster_extra(exp))
    res = evaluate(chip, cluster, exp.job)
    direct = result_metrics(chip, sized_cluster(chip, cluster), res, exp.job, exp.prices)
    for metric in shown:
        assert row[metric] == pytest.approx(direct[metric], rel=1e-9, abs=0), metric
        base_value = info["metrics"][metric]
        if base_value:
            assert row[f"rel_{metric}"] == pytest.approx(
                (direct[metric] - base_value) / abs(base_value), rel=1e-9, abs=1e-15)
    assert bool(row["feasible"]) == bool(direct["feasible"]) and row["reason"] == direct["reason"]
    # every searched parameter moves some reported number, except the scale-up domain when
    # nothing the design's best mapping exposes crosses it. Since issue 12 ZeRO-2 reduce-
    # scatters the gradients under the last micro-batch's backward pass and all-gathers the
    # weights under the next step's first forward pass (kernels/train.py), so e.g. llama3-8b at
    # tp1 cp2 dp512 hides its hierarchical gradient reduction whatever the domain size; and the
    # scale-up fabric's power and capex are per chip (network.SCALEUP_SWITCH_W_PER_CHIP), not
    # per domain size. Such a design must then show no exposed communication at all.
    rel = df[[f"rel_{m}" for m in shown]].fillna(0.0).abs().max(axis=1)
    moved = rel.groupby(df["param"]).max()
    unmoved = set(moved[moved == 0].index)
    assert unmoved <= {"scaleup_domain"}, moved[moved == 0]
    if unmoved:
        at = design_from_params(base, info["params"])
        best = evaluate(design_to_chip(at), design_to_cluster(at, cluster_extra(exp)), exp.job)
        assert best.feasible, best.reason
        comm = ("tp_cp_ep_comm", "cp_ring_exposed", "ep_all_to_all_exposed", "pipeline_p2p",
                "dp_comm_exposed", "fsdp_gather_exposed")
        assert all(best.breakdown_s[k] == 0.0 for k in comm), best.breakdown_s
    units = df[df["param"] == "compute_units"]
    assert (units["rel_tokens_per_s"] != 0).all() and (units["rel_silicon_mm2"] != 0).all()


def test_sensitivity_checks_its_arguments(run: Run) -> None:
    number = int(run.trials["trial"].iloc[0])
    df = sensitivity(run, number, params=["hbm_stacks"])
    assert set(df["param"]) == {"hbm_stacks"}
    with pytest.raises(ValueError, match="compute_units"):
        sensitivity(run, number, params=["sram_gb"])
    with pytest.raises(ValueError, match="no trial"):
        sensitivity(run, 10**6)
    with pytest.raises(ValueError, match="factor"):
        sensitivity(run, number, factor=1.0)
    assert math.isfinite(df["tokens_per_s"].iloc[0])


def test_trials_written_before_a_metric_existed_still_load(qs: Path, tmp_path: Path) -> None:
    """A run resumed after an upgrade that added a metric has trial files with and without
    its column: the log reads under the current schema, the older rows null there."""
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "run"
    shutil.copytree(qs, copy)
    files = sorted((copy / "trials").glob("part-*.parquet"))
    assert len(files) >= 2
    old = pq.read_table(files[0])
    pq.write_table(old.drop_columns(["clock_fraction"]), files[0])  # as written before
    trials = codesign.load_run(copy).trials
    assert len(trials) == len(codesign.load_run(qs).trials)
    n_old = old.num_rows
    assert trials["clock_fraction"].iloc[:n_old].isna().all()
    assert trials["clock_fraction"].iloc[n_old:].notna().all()


# ----------------------------------------------------------------------------- issue 13


SERVE_EXPERIMENT = REPO / "experiments" / "inference_llama70b.toml"


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-trial serving run (Llama-3 70B at a chat SLO) with an H100 baseline."""
    folder = tmp_path_factory.mktemp("serving")
    text = SERVE_EXPERIMENT.read_text(encoding="utf-8")
    for old, new in (
        ('"../search_spaces/inference_2027.toml"',
         f'"{(REPO / "search_spaces" / "inference_2027.toml").as_posix()}"'),
        ("trials = 640", "trials = 16"), ("population = 32", "population = 8"),
    ):
        assert old in text, f"test bug: {old!r} not in {SERVE_EXPERIMENT.name}"
        text = text.replace(old, new, 1)
    (folder / "exp.toml").write_text(text, encoding="utf-8")
    assert main(["search", str(folder / "exp.toml"), "--out", str(folder / "run"),
                 "--no-progress"]) == 0
    return folder / "run"


def _pareto_formats(capsys: pytest.CaptureFixture[str], run_dir: Path
                    ) -> tuple[dict, pd.DataFrame, str]:
    doc = run_json(capsys, "pareto", str(run_dir), "--format", "json")
    code, out, err = cli(capsys, "pareto", str(run_dir), "--format", "csv")
    assert code == 0, err
    table = cli(capsys, "pareto", str(run_dir))
    assert table[0] == 0, table[2]
    return doc, pd.read_csv(io.StringIO(out)), table[1]


@pytest.mark.parametrize("kind", ["train", "serve"])
def test_pareto_every_format_carries_every_column(kind: str, qs: Path, serving: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: csv dropped cp, ep, vpp, sequence_parallel (rows then showed
    tp x pp x dp != n_chips) and TTFT/ITL. Every Parquet column reaches csv and json, the
    degrees multiply to the chip count in every row, and the table shows every degree."""
    run_dir = qs if kind == "train" else serving
    run = codesign.load_run(run_dir)
    doc, df, table = _pareto_formats(capsys, run_dir)
    names = parquet_log.schema(run.experiment).names
    assert len(df) == len(doc["front"]) == len(run.pareto) > 0
    for col in names:
        assert col in df.columns, col
        assert all(col in r for r in doc["front"]), col
    assert list(df.columns) == doc["columns"]
    for rows in (df.to_dict("records"), doc["front"]):
        for r in rows:
            assert r["map_tp"] * r["map_pp"] * r["map_dp"] * r["map_cp"] == r["n_chips"], r
    if kind == "serve":
        for col in ("ttft_s", "itl_s"):
            assert df[col].notna().all() and all(r[col] > 0 for r in doc["front"]), col
        assert "ttft_s" in table and "itl_s" in table
    else:
        assert {"map_ep", "map_vpp", "map_sequence_parallel"} <= set(df.columns)
    # the table abbreviates the mapping but shows each degree of each row
    lines = {int(line.split()[0]): line for line in table.splitlines()
             if line.strip() and line.split()[0].isdigit()}
    for r in doc["front"]:
        line = lines[r["trial"]]
        assert f"tp{r['map_tp']} pp{r['map_pp']}" in line
        if kind == "train":
            assert f"dp{r['map_dp']} cp{r['map_cp']}" in line and f"vpp{r['map_vpp']}" in line
            assert line.rstrip().endswith(" sp") or not r["map_sequence_parallel"]
        else:
            assert f"replicas{r['map_dp']}" in line


def test_vs_a_baseline_means_the_same_in_pareto_compare_and_report(
        run: Run, qs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: pareto compared with the baseline as projected into the search space,
    compare with the catalog chip (3.8x against 23x for one run). Now both, and the
    report's reference points, use the projection, say so, and list what it changed."""
    from codesign.results.compare import BASELINE_MEANING

    doc = run_json(capsys, "pareto", str(qs), "--format", "json")
    front = {r["trial"]: r for r in doc["front"]}
    labels = {b["id"]: b for b in doc["baselines"]}
    assert set(labels) == set(BASELINES)
    base_trials = {t.user_attrs[BASELINE_ATTR]: t for t in complete(run.study)
                   if BASELINE_ATTR in t.user_attrs}
    for chip_id in BASELINES:
        assert labels[chip_id]["meaning"] == BASELINE_MEANING
        assert labels[chip_id]["trial"] == base_trials[chip_id].number
        assert labels[chip_id]["label"].startswith(f"{chip_id} {BASELINE_MEANING}")
        cmp = run_json(capsys, "compare", str(qs), "--against", chip_id, "--format", "json")
        ref = cmp["baseline"]
        assert ref["meaning"] == "projected" and ref["label"] == labels[chip_id]["label"]
        for i, (metric, _) in enumerate(run.objectives):
            # the reference is the baseline trial of the study, value for value
            assert ref["metrics"][metric] == base_trials[chip_id].values[i]
        for best in cmp["best"]:
            for metric, factor in best["improvement"].items():
                want = front[best["trial"]][f"{metric}_vs_{chip_id}"]
                assert (factor is None and want is None) or factor == pytest.approx(
                    want, rel=1e-12), (chip_id, metric, factor, want, ref["reason"])
        # the changes listed are the real differences: catalog chip vs the baseline trial
        cat = catalog.get_chip(chip_id)
        trial_chip = design_to_chip(design_from_params(base_design(run.experiment),
                                                       base_trials[chip_id].params))
        changes = ref["projection_changes"]
        assert changes == labels[chip_id]["projection_changes"] and changes
        for field, (was, now) in changes.items():
            if field != "chip_cost_usd":
                assert was == getattr(cat, field) and now == getattr(trial_chip, field)
        text = cli(capsys, "compare", str(qs), "--against", chip_id)[1]
        assert f"vs {chip_id} {BASELINE_MEANING}: " in text
        assert f"the catalog {chip_id} itself, not projected" in text
    assert "as projected into the search space" in cli(capsys, "pareto", str(qs))[1]


def test_infeasible_categories_keep_the_constraint_bound(run: Run) -> None:
    """Issue 13: the report showed ``tdp_w > #`` instead of the bound."""
    cats = infeasible_reasons(run, by="category")
    cons = cats[cats["kind"] == "constraint"]
    assert len(cons)
    bounds = {c.metric: c for c in run.experiment.constraints}
    for category in cons["category"]:
        assert "#" not in category
        for part in category.split(", "):
            metric = part.split(" ")[0]
            c = bounds[metric]
            assert part in (f"{metric} > {c.max:g}" if c.max is not None else None,
                            f"{metric} < {c.min:g}" if c.min is not None else None), part
    model = cats[cats["kind"] == "model"]
    assert not any(ch.isdigit() for c in model["category"] for ch in c)


def test_hypervolume_is_a_fraction_of_the_reference_box(run: Run) -> None:
    """Issue 13: the normalised hypervolume exceeded 1.0. It is now the fraction of the
    reference box, in [0, 1], also when a baseline lies far outside the rest."""
    hv = hypervolume_history(run)
    assert 0 <= hv["hypervolume"].min() and hv["hypervolume"].max() <= 1.0
    # a lone design is the whole box it dominates: exactly 1 (was 1.1^k)
    objectives = [("a", "maximize"), ("b", "minimize")]
    one = pd.DataFrame({"trial": [0], "constraints_ok": [True], "value_a": [3.0],
                        "value_b": [2.0]})
    assert _hv_history(one, objectives, 10)["hypervolume"].iloc[-1] == pytest.approx(1.0)
    # a front plus a baseline far outside it (much worse in a, better in b)
    rng = np.random.default_rng(1)
    x = rng.random(40)
    df = pd.DataFrame({"trial": np.arange(41), "constraints_ok": True,
                       "value_a": np.append(x, -1e6), "value_b": np.append(1.0 - x, -5.0)})
    out = _hv_history(df, objectives, 50)["hypervolume"]
    assert (np.diff(out) >= 0).all() and 0 < out.iloc[-1] <= 1.0


def test_sensitivity_says_which_direction_is_better(run: Run) -> None:
    """Issue 13: sensitivity bars had no better/worse direction. ``better_<metric>`` is the
    change signed so that > 0 is better; the report plots it on an axis that says so."""
    from codesign.model.metrics import METRICS
    from codesign.results.report import SENSITIVITY_AXIS, _sensitivity

    df = sensitivity(run, int(run.best("tokens_per_joule")["trial"]))
    objectives = dict(run.objectives)
    shown = list(dict.fromkeys([*objectives, *REPORTED_METRICS]))
    for metric in shown:
        direction = objectives.get(metric, METRICS[metric][1])
        assert df.attrs["directions"][metric] == direction
        sign = 1.0 if direction == "maximize" else -1.0
        np.testing.assert_allclose(df[f"better_{metric}"], sign * df[f"rel_{metric}"])
    assert (df["better_silicon_mm2"] < 0).any() and (df["rel_silicon_mm2"] > 0).any()
    fig = _sensitivity(df, shown)
    assert "better" in SENSITIVITY_AXIS and "worse" in SENSITIVITY_AXIS
    assert fig.layout.xaxis.title.text == SENSITIVITY_AXIS
    names = {t.name: t for t in fig.data}
    area = names["silicon_mm2 (lower is better)"]
    ok = df[df["feasible"]]
    np.testing.assert_allclose(area.x, -100.0 * ok["rel_silicon_mm2"].astype(float))
    assert "tokens_per_joule (higher is better)" in names


def test_compare_with_a_chip_the_model_cannot_evaluate_exits_2(
        qs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``compare --against wse3`` (no bf16 peak, no TDP: neither projectable nor evaluable)
    ended in a traceback; it is bad input: exit 2 naming the flag and what is missing."""
    code, out, err = cli(capsys, "compare", str(qs), "--against", "wse3")
    assert code == 2 and out == ""
    assert "--against" in err and "wse3" in err and "tflops_bf16" in err
    assert "Traceback" not in err
