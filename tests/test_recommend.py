"""The architect's path: ``codesign recommend``, ``codesign export-design`` and the design file
it writes read back by ``codesign evaluate --chip`` to the metrics the search stored; the
help every command gives (defaults, an example, ``--version``, usage on a bare ``codesign``)."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import pytest

from codesign.cli.parser import EXAMPLES, parser
from codesign.results.recommend import bounds_of, recommend
from tests.cli_helpers import run, run_json

ROOT = Path(__file__).resolve().parents[1]

ROUND_TRIP = ("tokens_per_s", "tokens_per_s_per_chip", "tokens_per_joule", "chip_power_w",
              "cluster_power_w", "cost_per_mtoken_usd", "die_area_mm2", "chip_cost_usd",
              "memory_gb_per_chip", "energy_per_token_j", "idle_chips", "tdp_w", "n_chips",
              "provisioned_power_w", "tokens_per_s_per_mw", "clock_fraction")
"""Metrics both ``evaluate --json`` and the trial log hold."""


def _search(tmp: Path, name: str, trials: int, capsys) -> Path:
    """A run of ``experiments/<name>.toml`` (its search space copied alongside) in ``tmp``."""
    for folder in ("experiments", "search_spaces"):
        shutil.copytree(ROOT / folder, tmp / folder, dirs_exist_ok=True)
    out = tmp / "runs" / name
    code, _, err = run(capsys, "search", str(tmp / "experiments" / f"{name}.toml"), "--trials",
                       str(trials), "--out", str(out), "--no-progress")
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    capsys = _Capture()
    return _search(tmp_path_factory.mktemp("qs"), "quickstart", 96, capsys)


class _Capture:
    """A stand-in for pytest's capsys in a module fixture (output discarded)."""

    def readouterr(self) -> tuple[str, str]:
        return "", ""


def _front_trials(run_dir: Path, n: int) -> list[int]:
    from codesign.results.inspect import load_run

    front = load_run(run_dir).pareto
    front = front[front["feasible"] & ~front["is_baseline"]]
    return [int(t) for t in front["trial"].head(n)]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_an_exported_design_evaluates_to_the_metrics_the_search_stored(quickstart: Path,
                                                                       tmp_path, capsys):
    from codesign.results.inspect import load_run

    trials = load_run(quickstart).trials.set_index("trial")
    for trial in _front_trials(quickstart, 3):
        out = tmp_path / f"t{trial}.toml"
        doc = run_json(capsys, "export-design", str(quickstart), str(trial), "-o", str(out),
                       "--json")
        assert doc["trial"] == trial and doc["feasible"] and Path(doc["path"]) == out
        got = run_json(capsys, "evaluate", "--chip", str(out), "--json")
        stored = trials.loc[trial]
        for m in ROUND_TRIP:
            assert _close(float(got[m]), float(stored[m])), (trial, m, got[m], stored[m])
        assert got["mapping"]["tp"] == stored["map_tp"] and got["mapping"]["dp"] == stored[
            "map_dp"]


def test_a_serving_and_a_goodput_design_round_trip(tmp_path, capsys):
    """Serving (an inference experiment) and the cluster's resilience parameters (spares,
    checkpoints: the goodput experiment at 100,000 chips) travel with the design."""
    from codesign.results.inspect import load_run

    for name, extra in (("inference_llama70b", ()),
                        ("goodput_100k", ("train_goodput_tokens_per_s",))):
        run_dir = _search(tmp_path / name, name, 32, capsys)
        trial = _front_trials(run_dir, 1)[0]
        out = tmp_path / f"{name}.toml"
        run_json(capsys, "export-design", str(run_dir), str(trial), "-o", str(out), "--json")
        got = run_json(capsys, "evaluate", "--chip", str(out), "--json")
        stored = load_run(run_dir).trials.set_index("trial").loc[trial]
        for m in ("tokens_per_s", "tokens_per_joule", "chip_power_w", "cost_per_mtoken_usd"):
            assert _close(float(got[m]), float(stored[m])), (name, m, got[m], stored[m])
        for m in extra:
            assert _close(float(got["goodput"][m]), float(stored[m])), (name, m)


def test_a_design_file_evaluates_on_another_workload_and_needs_one(quickstart, tmp_path,
                                                                   capsys):
    trial = _front_trials(quickstart, 1)[0]
    out = tmp_path / "t.toml"
    run_json(capsys, "export-design", str(quickstart), str(trial), "-o", str(out), "--json")
    other = run_json(capsys, "evaluate", "--chip", str(out), "--workload", "llama3-70b",
                     "--n-chips", "256", "--json")
    assert other["model"] == "Llama-3 70B" and other["n_chips"] == 256
    chip_only = tmp_path / "chip.toml"
    chip_only.write_text(out.read_text().split("[cluster]")[0], encoding="utf-8")
    code, _, err = run(capsys, "evaluate", "--chip", str(chip_only))
    assert code == 2 and "--workload" in err and "Traceback" not in err


def test_export_refuses_an_unknown_trial_and_an_existing_file(quickstart, tmp_path, capsys):
    out = tmp_path / "t.toml"
    code, _, err = run(capsys, "export-design", str(quickstart), "999999", "-o", str(out))
    assert code == 2 and "TRIAL" in err and "999999" in err and not out.exists()
    trial = _front_trials(quickstart, 1)[0]
    out.write_text("mine\n", encoding="utf-8")
    code, _, err = run(capsys, "export-design", str(quickstart), str(trial), "-o", str(out))
    assert code == 2 and "--force" in err and out.read_text() == "mine\n"
    code, _, err = run(capsys, "export-design", str(quickstart), str(trial), "-o", str(out),
                       "--force")
    assert code == 0, err
    assert "[design]" in out.read_text()


def test_recommend_ranks_by_the_weighted_improvement_and_says_why(quickstart, capsys):
    doc = run_json(capsys, "recommend", str(quickstart), "--against", "h100-sxm", "--top",
                   "4", "--json")
    recs = doc["recommendations"]
    assert 1 <= len(recs) <= 4 and doc["reference"]["label"] == "h100-sxm (projected)"
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    prefs = doc["preferences"]
    ref = doc["reference"]["metrics"]
    for r in recs:  # the score is the weighted geometric mean of the improvements
        gains = []
        for p in prefs:
            d, b = r["metrics"][p["metric"]], ref[p["metric"]]
            g = d / b if p["direction"] == "maximize" else b / d
            assert _close(g, r["improvement"][p["metric"]])
            gains.append(g)
        assert _close(r["score"], math.prod(gains) ** (1 / len(gains)))
        assert "h100-sxm (projected)" in r["reason"] and "limited by" in r["reason"]
    # a preference on one metric alone ranks by that metric
    one = run_json(capsys, "recommend", str(quickstart), "--objective", "tokens_per_joule=3",
                   "--top", "3", "--json")
    vals = [r["metrics"]["tokens_per_joule"] for r in one["recommendations"]]
    assert vals == sorted(vals, reverse=True)


def test_recommend_flags_the_bounds_the_front_presses_against(quickstart, capsys):
    from codesign.results.inspect import load_run

    doc = run_json(capsys, "recommend", str(quickstart), "--json")
    run_ = load_run(quickstart)
    exp = run_.experiment
    front = run_.pareto
    front = front[front["feasible"] & front["constraints_ok"] & ~front["is_baseline"]]
    rows = [dict(r) for _, r in front.iterrows()]
    for b in doc["bounds"]:
        n = sum(1 for r in rows if (b["param"], b["side"], b["bound"]) in bounds_of(
            exp, {p.name: r[f"param_{p.name}"] for p in exp.space.params}))
        assert n == b["designs"] and n / len(rows) >= 0.5 and b["of"] == len(rows)
        assert "widen" in b["suggestion"]
    spec = next(p for p in exp.space.params if p.kind != "categorical")
    assert bounds_of(exp, {spec.name: spec.high}) == [(spec.name, "upper", spec.high)]
    assert bounds_of(exp, {spec.name: (spec.low + spec.high) / 2}) == []


@pytest.mark.parametrize("argv, key", [
    (("--objective", "tokens_per_jule"), "--objective"),
    (("--objective", "tokens_per_joule=0"), "--objective"),
    (("--objective", "tokens_per_joule=x"), "--objective"),
    (("--against", "h1000"), "--against"),
    (("--top", "0"), "--top"),
])
def test_recommend_bad_input_exits_2_naming_the_flag(quickstart, capsys, argv, key):
    code, out, err = run(capsys, "recommend", str(quickstart), *argv)
    assert code == 2 and key in err and "Traceback" not in err and out == ""


def test_recommend_takes_an_exported_design_as_the_reference(quickstart, tmp_path, capsys):
    trial = _front_trials(quickstart, 1)[0]
    out = tmp_path / "ref.toml"
    run_json(capsys, "export-design", str(quickstart), str(trial), "-o", str(out), "--json")
    doc = run_json(capsys, "recommend", str(quickstart), "--against", str(out), "--json")
    assert doc["reference"]["label"] == "ref (projected)"
    same = [r for r in doc["recommendations"] if r["trial"] == trial]
    for r in same:  # the design against itself: no gain, no loss
        assert all(_close(g, 1.0) for g in r["improvement"].values())


def test_search_ends_with_the_recommendation(tmp_path, capsys):
    for folder in ("experiments", "search_spaces"):
        shutil.copytree(ROOT / folder, tmp_path / folder, dirs_exist_ok=True)
    code, out, err = run(capsys, "search", str(tmp_path / "experiments" / "quickstart.toml"),
                         "--trials", "64", "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    assert "recommended: trial" in out and "codesign recommend" in out


def test_every_command_s_help_has_an_example_and_its_defaults(capsys):
    sub = next(a for a in parser()._actions if a.dest == "command")
    assert set(sub.choices) <= set(EXAMPLES)
    for name in sub.choices:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "example:" in out and EXAMPLES[name].split()[1] in out, name
    code, out, _ = run(capsys, "evaluate", "--help")
    out = " ".join(out.split())  # help wraps lines at the terminal's width
    assert "(default: bf16)" in out and "default 4096" in out and "scale-up domain" in out
    code, out, _ = run(capsys, "search", "--help")
    assert "(default: 1)" in " ".join(out.split())  # --workers


def test_version_and_a_bare_codesign(capsys):
    from codesign import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"codesign {__version__}"
    code, out, err = run(capsys)
    assert code == 2 and "usage: codesign" in err and "COMMAND" in err and out == ""


def test_bounds_of_ignores_text_choices_and_interior_values():
    from codesign.search.experiment import ParamSpec

    @dataclasses.dataclass
    class _Space:
        params: tuple

    @dataclasses.dataclass
    class _Exp:
        space: _Space

    exp = _Exp(_Space((ParamSpec("hbm_gen", "categorical", choices=("HBM3", "HBM3e")),
                       ParamSpec("hbm_stacks", "categorical", choices=(4, 6, 8)),
                       ParamSpec("clock_ghz", "float", 1.0, 2.0, 0.1))))
    assert bounds_of(exp, {"hbm_gen": "HBM3e", "hbm_stacks": 8, "clock_ghz": 1.5}) == [
        ("hbm_stacks", "upper", 8)]
    assert bounds_of(exp, {"clock_ghz": 1.02}) == [("clock_ghz", "lower", 1.0)]


def test_recommend_on_the_module_run_ranks_at_most_the_front(quickstart):
    rec = recommend(quickstart, top=1000)
    assert len(rec["recommendations"]) == rec["front_designs"]


def _with_baselines(tmp: Path, refs: list[str]) -> Path:
    """The quickstart experiment copied into ``tmp`` with ``baselines = refs``."""
    for folder in ("experiments", "search_spaces", "examples"):
        shutil.copytree(ROOT / folder, tmp / folder, dirs_exist_ok=True)
    exp = tmp / "experiments" / "quickstart.toml"
    listed = ", ".join(f'"{r}"' for r in refs)
    text = exp.read_text(encoding="utf-8").replace(
        "[experiment]\n", f"[experiment]\nbaselines = [{listed}]\n", 1)
    exp.write_text(text, encoding="utf-8")
    return exp


def test_an_experiment_takes_design_and_spec_sheet_files_as_baselines(quickstart, tmp_path,
                                                                      capsys):
    """An exported design as a baseline of another run is evaluated to the same metrics
    (its own parameters, no projection through its chip's numbers); a spec-sheet chip is
    projected as a catalog chip is; the run directory keeps copies, so a resume from it reads
    them wherever the originals went."""
    from codesign.results.inspect import load_run

    trial = _front_trials(quickstart, 1)[0]
    design = tmp_path / "experiments" / "mine.toml"
    design.parent.mkdir(parents=True)
    run_json(capsys, "export-design", str(quickstart), str(trial), "-o", str(design), "--json")
    exp = _with_baselines(tmp_path, ["h100-sxm", "mine.toml",
                                     "../examples/chips/my_accelerator.toml"])
    out = tmp_path / "run"
    code, _, err = run(capsys, "search", str(exp), "--trials", "40", "--out", str(out),
                       "--no-progress")
    assert code == 0, err
    trials = load_run(out).trials
    base = trials[trials["is_baseline"]].set_index("baseline")
    assert set(base.index) == {"h100-sxm", "mine", "my_accelerator"}
    stored = load_run(quickstart).trials.set_index("trial").loc[trial]
    for m in ROUND_TRIP:
        assert _close(float(base.loc["mine", m]), float(stored[m])), m
    assert sorted(p.name for p in (out / "baselines").iterdir()) == ["mine.toml",
                                                                     "my_accelerator.toml"]
    design.unlink()
    code, _, err = run(capsys, "resume", str(out), "--trials", "32", "--no-progress")
    assert code == 0, err
    doc = run_json(capsys, "compare", str(out), "--against", "mine", "--format", "json")
    assert doc["baseline"]["trial"] is not None


@pytest.mark.parametrize("refs, needle", [
    (["nothere.toml"], "baselines[0]"),
    (["h100-sxm", "../examples/chips/my_accelerator.toml", "../examples/chips/"
      "my_accelerator.toml"], "baselines[2]"),
])
def test_a_bad_baseline_file_exits_2_naming_it(tmp_path, capsys, refs, needle):
    exp = _with_baselines(tmp_path, refs)
    code, _, err = run(capsys, "search", str(exp), "--trials", "8", "--out",
                         str(tmp_path / "run"), "--no-progress")
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_baseline_file_named_like_a_catalog_chip_is_refused(tmp_path, capsys):
    exp = _with_baselines(tmp_path, ["h100-sxm.toml"])
    shutil.copy(ROOT / "examples" / "chips" / "my_accelerator.toml",
                tmp_path / "experiments" / "h100-sxm.toml")
    code, _, err = run(capsys, "search", str(exp), "--trials", "8", "--out",
                       str(tmp_path / "run"), "--no-progress")
    assert code == 2 and "baselines[0]" in err and "catalog chip id" in err


@pytest.mark.parametrize("cluster, key", [
    ("power_budget_mw = 0", "cluster.power_budget_mw"),
    ("site_mw = 10", "cluster.site_mw"),
    ("n_chips = 64\npower_budget_mw = 5", "cluster.power_budget_mw"),
    ("n_chip = 64", "cluster.n_chip"),
])
def test_a_design_file_s_cluster_follows_the_experiment_s_rules(tmp_path, capsys, cluster,
                                                                key):
    f = tmp_path / "d.toml"
    f.write_text(f"[design]\ncompute_units = 132\n\n[cluster]\n{cluster}\n", encoding="utf-8")
    code, _, err = run(capsys, "evaluate", "--chip", str(f), "--workload", "llama3-8b")
    assert code == 2 and key in err and str(f) in err and "Traceback" not in err


def test_a_budget_sized_design_round_trips(tmp_path, capsys):
    """An experiment sized by a power budget: the exported file keeps the budget, not a chip
    count, and evaluates to the stored metrics."""
    from codesign.results.inspect import load_run

    run_dir = _search(tmp_path, "gigawatt", 32, capsys)
    trial = _front_trials(run_dir, 1)[0]
    out = tmp_path / "gw.toml"
    run_json(capsys, "export-design", str(run_dir), str(trial), "-o", str(out), "--json")
    text = out.read_text()
    assert "power_budget_mw" in text and "\nn_chips" not in text
    got = run_json(capsys, "evaluate", "--chip", str(out), "--json")
    stored = load_run(run_dir).trials.set_index("trial").loc[trial]
    for m in ("tokens_per_s", "n_chips", "tokens_per_joule", "cluster_power_w"):
        assert _close(float(got[m]), float(stored[m])), m


def test_a_decode_pool_on_a_spec_sheet_or_an_exported_chip(quickstart, tmp_path, capsys):
    """--decode-chip takes the chip files --chip takes."""
    trial = _front_trials(quickstart, 1)[0]
    design = tmp_path / "d.toml"
    run_json(capsys, "export-design", str(quickstart), str(trial), "-o", str(design), "--json")
    for chip in (str(ROOT / "examples" / "chips" / "my_accelerator.toml"), str(design)):
        doc = run_json(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                       "--n-chips", "16", "--input-len", "1000", "--output-len", "200",
                       "--disaggregated", "--decode-chip", chip, "--json")
        assert doc["serving_traffic"] is not None
    code, _, err = run(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                       "--input-len", "1000", "--disaggregated", "--decode-chip", "nope")
    assert code == 2 and "--decode-chip" in err
