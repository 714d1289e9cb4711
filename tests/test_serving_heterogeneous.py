"""Heterogeneous serving pools searched jointly: a search space's ``decode_*`` parameters give
the decode pool its own chip; a design is evaluated exactly as
:func:`codesign.model.serving.evaluate_traffic` deploys a prefill chip and a decode chip, a
pair of equal chips exactly as one chip, and bad combinations are clear errors (exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codesign.cli import main
from codesign.errors import ConfigError
from codesign.model.catalog import get_chip
from codesign.model.serving import Traffic, evaluate_traffic
from codesign.model.specs import InferJob
from codesign.search.design import (
    DECODE_PARAMETERS,
    DEFAULT_DESIGN,
    decode_design,
    design_to_chip,
    design_to_cluster,
    project_chip,
)
from codesign.search.evaluate import evaluate_designs
from codesign.search.experiment import load_experiment, load_search_space
from codesign.search.space import project_params

REPO = Path(__file__).resolve().parents[1]
HET = REPO / "experiments" / "serving_heterogeneous_llama70b.toml"
TRAFFIC = Traffic(input_cv=1.0, output_cv=1.0, percentile=0.99)


def _job() -> InferJob:
    from codesign.model.catalog import get_model

    return InferJob(model=get_model("llama3-70b"), input_len=212, output_len=215,
                    precision="fp8", ttft_slo_s=2.0, itl_slo_s=0.05)


def _design(**over) -> dict:
    d = dict(DEFAULT_DESIGN, n_chips=72, scaleup_domain=72)
    d.update(over)
    return d


# a compute-rich prefill chip and a bandwidth-rich decode chip
PREFILL = {"compute_units": 160, "macs_per_unit": 4096, "clock_ghz": 2.0, "hbm_gen": "HBM3",
           "hbm_stacks": 2, "process_nm": 3}
DECODE = {"decode_compute_units": 96, "decode_macs_per_unit": 2048,
          "decode_hbm_gen": "HBM4", "decode_hbm_stacks": 4, "decode_process_nm": 3}


def test_decode_parameters_mirror_the_chip_parameters_only() -> None:
    assert "decode_hbm_stacks" in DECODE_PARAMETERS
    assert "decode_n_chips" not in DECODE_PARAMETERS  # both pools share the cluster
    assert "decode_topology" not in DECODE_PARAMETERS
    assert decode_design(_design()) is None
    dec = decode_design(_design(**PREFILL, **DECODE))
    assert dec["hbm_stacks"] == 4 and dec["compute_units"] == 96
    assert dec["clock_ghz"] == 2.0  # not given for the decode chip: the prefill chip's
    assert not any(k.startswith("decode_") for k in dec)


def test_a_heterogeneous_design_is_evaluated_as_evaluate_traffic_deploys_the_pair() -> None:
    design = _design(**PREFILL, **DECODE)
    job = _job()
    m = evaluate_designs([design], job, traffic=TRAFFIC, pools="disaggregated")[0]
    chip = design_to_chip(design)
    dec = design_to_chip(decode_design(design), name="decode")
    ref = evaluate_traffic(chip, design_to_cluster(design), job,
                           Traffic(input_cv=1.0, output_cv=1.0, percentile=0.99,
                                   disaggregated=True), decode_chip=dec)
    assert ref["feasible"] and m["feasible"]
    assert m["goodput_rps"] == pytest.approx(ref["goodput_rps"], rel=1e-12)
    assert m["goodput_cost_per_mtoken_usd"] == pytest.approx(ref["cost_per_mtoken_usd"],
                                                             rel=1e-12)
    for k in ("ttft", "itl"):  # every percentile is a metric objectives may use
        for q in (50, 90, 99):
            assert m[f"{k}_p{q}_s"] == pytest.approx(ref[f"{k}_s"][f"p{q}"], rel=1e-12)
        assert m[f"{k}_p50_s"] <= m[f"{k}_p90_s"] <= m[f"{k}_p99_s"]
    assert m["prefill_chip_share"] == pytest.approx(
        ref["prefill_chips"] / (ref["prefill_chips"] + ref["decode_chips"]))
    # the decode_* metrics are the decode chip's, the plain ones the prefill chip's
    assert m["decode_hbm_gb"] == dec.hbm_gb != m["hbm_gb"] == chip.hbm_gb
    assert m["decode_tdp_w"] == pytest.approx(dec.tdp_w)
    assert m["decode_die_area_mm2"] == pytest.approx(dec.die_area_mm2)
    # and it differs from either chip alone in both pools
    alone = evaluate_designs([_design(**PREFILL)], job, traffic=TRAFFIC,
                             pools="disaggregated")[0]
    assert alone["goodput_rps"] != pytest.approx(m["goodput_rps"])


def test_a_pair_of_equal_chips_is_the_chip_itself() -> None:
    same = {f"decode_{k}": v for k, v in PREFILL.items()}
    job = _job()
    one, pair = evaluate_designs([_design(**PREFILL), _design(**PREFILL, **same)], job,
                                 traffic=TRAFFIC, pools="both")
    for key in ("goodput_rps", "goodput_cost_per_mtoken_usd", "one_pool_goodput_rps",
                "disaggregated_goodput_rps", "prefill_chip_share", "ttft_p99_s"):
        assert pair[key] == pytest.approx(one[key], rel=1e-12), key
    for dec_key, key in (("decode_tdp_w", "tdp_w"), ("decode_hbm_gb", "hbm_gb"),
                         ("decode_chip_cost_usd", "chip_cost_usd")):
        assert one[dec_key] == pytest.approx(one[key]) and pair[dec_key] == pytest.approx(
            pair[key])


def test_a_decode_chip_that_cannot_be_built_makes_the_design_infeasible() -> None:
    # 16 HBM stacks on a small die: more stacks than its edge holds
    bad = dict(DECODE, decode_compute_units=16, decode_macs_per_unit=512,
               decode_hbm_stacks=16)
    m = evaluate_designs([_design(**PREFILL, **bad)], _job(), traffic=TRAFFIC,
                         pools="disaggregated")[0]
    assert not m["feasible"] and m["reason"].startswith("decode chip: ")
    assert m["goodput_rps"] == 0.0 and math.isfinite(m["decode_tdp_w"])


def test_the_shipped_pair_space_loads_and_baselines_take_one_chip_in_both_pools() -> None:
    exp = load_experiment(HET)
    names = [p.name for p in exp.space.params]
    assert "compute_units" in names and "decode_compute_units" in names
    assert exp.traffic is not None and exp.pools == "both"
    params = project_params(exp.space, project_chip(get_chip("h100-sxm")))
    for name in names:
        if name.startswith("decode_"):
            assert params[name] == params[name[len("decode_"):]], name


def _write(tmp_path: Path, traffic: str, param: str = "decode_hbm_stacks") -> Path:
    (tmp_path / "s.toml").write_text(
        '[space]\nname = "s"\n[params.hbm_stacks]\ntype = "int"\nlow = 2\nhigh = 8\n'
        f'[params.{param}]\ntype = "int"\nlow = 2\nhigh = 8\n')
    exp = tmp_path / "e.toml"
    exp.write_text(
        '[experiment]\nname = "e"\nsearch_space = "s.toml"\n'
        '[workload]\nkind = "infer"\nmodel = "llama3-70b"\ninput_len = 212\n'
        'output_len = 215\nitl_slo_s = 0.05\n[cluster]\nn_chips = 8\n'
        f'[objectives]\ngoodput_rps = "maximize"\n{traffic}')
    return exp


@pytest.mark.parametrize("traffic, key", [
    ("", "traffic"),
    ('[traffic]\npools = "one"\n', "traffic.pools"),
])
def test_a_decode_chip_without_disaggregated_pools_is_rejected(tmp_path: Path, traffic: str,
                                                               key: str, capsys) -> None:
    if not traffic:  # goodput_rps needs [traffic]: use a metric that does not
        path = _write(tmp_path, "")
        path.write_text(path.read_text().replace("goodput_rps", "tokens_per_s"))
    else:
        path = _write(tmp_path, traffic)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert err.value.key == key and "decode_hbm_stacks" in str(err.value)
    assert main(["search", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "decode_hbm_stacks" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_objectives_and_constraints_may_use_any_percentile(tmp_path: Path) -> None:
    path = _write(tmp_path, '[traffic]\npercentile = 0.9\n[constraints]\n'
                            'ttft_p90_s = { max = 1.0 }\nitl_p50_s = { max = 0.03 }\n')
    path.write_text(path.read_text().replace('goodput_rps = "maximize"',
                                             'goodput_rps = "maximize"\nitl_p90_s = "minimize"'))
    exp = load_experiment(path)
    assert [o.metric for o in exp.objectives] == ["goodput_rps", "itl_p90_s"]
    assert {c.metric for c in exp.constraints} == {"ttft_p90_s", "itl_p50_s"}


def test_an_unknown_decode_parameter_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, '[traffic]\npools = "both"\n', param="decode_n_chips")
    with pytest.raises(ConfigError) as err:
        load_search_space(tmp_path / "s.toml")
    assert "decode_n_chips" in str(err.value)
    assert load_experiment(_write(tmp_path, '[traffic]\npools = "both"\n')).pools == "both"
    assert path.exists()


def test_a_short_heterogeneous_search_logs_both_chips(tmp_path: Path, capsys) -> None:
    import codesign

    run_dir = tmp_path / "run"
    assert main(["search", str(HET), "--trials", "64", "--out", str(run_dir),
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials_total_complete"] >= 64
    run = codesign.load_run(run_dir)
    trials = run.trials
    assert {"param_decode_hbm_stacks", "decode_tdp_w", "prefill_chip_share"} <= set(
        trials.columns)
    base = trials[trials["is_baseline"]]
    assert set(base["baseline"]) == {"h100-sxm", "b200", "gb200"}
    # a baseline is one chip in both pools
    assert (base["decode_tdp_w"] - base["tdp_w"]).abs().max() < 1e-9
    ok = trials[trials["feasible"] & ~trials["is_baseline"]]
    assert (ok["param_decode_compute_units"] != ok["param_compute_units"]).any()


def test_warm_start_queues_the_other_runs_front_as_pairs_once(tmp_path: Path,
                                                              capsys) -> None:
    """The single-chip front seeds the pair study: each of its designs comes back as the pair
    of itself with the same goodput and cost, and a second search does not queue them again."""
    import codesign

    hom, het = tmp_path / "hom", tmp_path / "het"
    assert main(["search", str(REPO / "experiments" / "serving_disaggregated_llama70b.toml"),
                 "--trials", "96", "--out", str(hom), "--no-progress"]) == 0
    front = codesign.load_run(hom).pareto
    assert len(front) >= 1
    for _ in range(2):
        assert main(["search", str(HET), "--trials", "32", "--out", str(het),
                     "--no-progress", "--warm-start", str(hom)]) == 0
    capsys.readouterr()
    run = codesign.load_run(het)
    warm = [t for t in run.study.trials if "warm_start" in t.user_attrs]
    assert len({t.user_attrs["warm_start"] for t in warm}) == len(warm) >= 1  # once each
    assert {t.user_attrs["warm_start"] for t in warm} <= {
        f"serving_disaggregated_llama70b#{n}" for n in front["trial"]}
    by_trial = front.set_index("trial")
    for t in warm:
        src = by_trial.loc[int(t.user_attrs["warm_start"].split("#")[1])]
        for name in ("compute_units", "hbm_stacks", "clock_ghz"):
            assert t.params[name] == t.params[f"decode_{name}"] == src[f"param_{name}"]
        assert t.values[0] == pytest.approx(src["value_goodput_rps"], rel=1e-12)
        assert t.values[1] == pytest.approx(src["value_goodput_cost_per_mtoken_usd"],
                                            rel=1e-12)


@pytest.mark.parametrize("make", ["missing", "not_a_run", "no_front"])
def test_a_bad_warm_start_is_exit_2_and_creates_no_run(tmp_path: Path, make: str,
                                                       capsys) -> None:
    other = tmp_path / "other"
    if make != "missing":
        other.mkdir()
    if make == "no_front":
        (other / "experiment.toml").write_text(HET.read_text())
    assert main(["search", str(HET), "--trials", "8", "--out", str(tmp_path / "run"),
                 "--no-progress", "--warm-start", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--warm-start" in err and str(other) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_pareto_prints_units_with_brackets_as_written(tmp_path: Path, capsys) -> None:
    """``goodput_rps``'s unit names ``[traffic]``: the table prints it, not as rich markup."""
    run_dir = tmp_path / "run"
    assert main(["search", str(HET), "--trials", "32", "--out", str(run_dir),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["pareto", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "limits at the [traffic] percentile" in out
    assert "decode_hbm_stacks" in out
