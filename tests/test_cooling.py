"""Cooling as a constraint (issue 15, systems as built): air or liquid racks bound a rack's power
and a chip's TDP; per-MW and per-GW figures divide by provisioned facility power."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from codesign.model.catalog import chip_ids, get_chip, get_model
from codesign.model.catalog import platforms as plat
from codesign.model.catalog.assume import explain_unknowns
from codesign.model.cluster import build, cooling
from codesign.model.perf import evaluate, result_metrics, sized_cluster
from codesign.model.specs import ClusterSpec, TrainJob
from codesign.search.design import (
    DEFAULT_DESIGN,
    DESIGN_PARAMETERS,
    NEUTRAL_VALUES,
    design_to_chip,
    design_to_cluster,
    project_chip,
)
from codesign.search.evaluate import evaluate_designs
from codesign.search.experiment import load_experiment, load_search_space
from codesign.search.storage.trial_rows import constraint_values
from tests.cli_helpers import run, run_json

REPO = Path(__file__).resolve().parents[1]
JOB = TrainJob(get_model("llama3-8b"), seq_len=4096, global_batch=512)


def _as_built(chip_id: str, n: int, **overrides: object) -> dict:
    chip, cluster = build.as_built(explain_unknowns(get_chip(chip_id))[0], n, **overrides)
    res = evaluate(chip, cluster, JOB)
    return result_metrics(chip, sized_cluster(chip, cluster), res, JOB)


def test_gb200_as_built_is_liquid_and_fits() -> None:
    m = _as_built("gb200", 288)
    assert m["feasible"]
    assert m["rack_limit_kw"] == cooling.RACK_LIMIT_KW["liquid"]
    assert 100.0 < m["rack_power_kw"] < 140.0  # 72 chips at 1,200 W + Grace + network
    assert m["cooling_ok"] == 1


def test_gb200_rack_under_air_does_not_fit() -> None:
    m = _as_built("gb200", 288, cooling="air")
    assert m["rack_limit_kw"] == cooling.RACK_LIMIT_KW["air"] == 50.0
    assert m["rack_power_kw"] > m["rack_limit_kw"]
    assert m["cooling_ok"] == 0
    # the mapping still runs: cooling is a constraint of the experiment, not of the kernel
    assert m["feasible"]
    why = cooling.check("air", m["rack_power_kw"], 1200.0)
    assert "rack" in why.reason and "chip TDP 1200 W > 1000 W" in why.reason


def test_h100_as_built_is_air_and_fits() -> None:
    _, cluster = build.as_built(get_chip("h100-sxm"), 128)
    assert (cluster.cooling, cluster.chips_per_rack) == ("air", 32)  # 4 DGX H100 per rack
    m = _as_built("h100-sxm", 128)
    assert 25.0 < m["rack_power_kw"] <= 50.0
    assert m["cooling_ok"] == 1


@pytest.mark.parametrize("chip_id", [c for c in chip_ids() if plat.platform_of(c)])
def test_every_platform_as_built_fits_its_own_cooling(chip_id: str) -> None:
    """No catalog platform is sold in a rack its cooling cannot cool (the limits are not set
    below what is shipped)."""
    chip, cluster = build.as_built(explain_unknowns(get_chip(chip_id))[0], 16384)
    from codesign.model.perf import overhead_w_per_chip

    wired = build.port_split(chip, cluster)
    rack_kw = cluster.chips_per_rack * (chip.tdp_w + overhead_w_per_chip(wired, cluster)) / 1e3
    got = cooling.check(cluster.cooling, rack_kw, chip.tdp_w)
    assert cluster.cooling == plat.platform_of(chip_id).cooling
    assert got.ok, (chip_id, got.reason)


def _hot_design(cool: str) -> dict:
    design = dict(DEFAULT_DESIGN, process_nm=3, compute_units=256, macs_per_unit=4096,
                  clock_ghz=1.8, hbm_gen="HBM3e", hbm_stacks=8, n_chips=64,
                  chips_per_rack=8, cooling=cool)
    return design


def test_a_searched_air_design_over_the_chip_limit_is_flagged() -> None:
    hot = _hot_design("air")
    assert design_to_chip(hot).tdp_w > 1500.0
    assert design_to_cluster(hot).cooling == "air"
    air, liquid, unstated = evaluate_designs(
        [hot, _hot_design("liquid"), _hot_design("unstated")], JOB)
    assert air["rack_power_kw"] < 50.0  # 8 chips per rack: only the chip is too hot
    assert air["cooling_ok"] == 0
    assert liquid["cooling_ok"] == 1 and unstated["cooling_ok"] == 1
    assert math.isnan(unstated["rack_limit_kw"])
    # an experiment that constrains cooling_ok marks the air design infeasible
    exp = load_experiment(REPO / "experiments" / "ethernet_rack_2027.toml")
    c_air = constraint_values(exp, air)
    c_liquid = constraint_values(exp, liquid)
    assert c_air["cooling_ok_min"] > 0 >= c_liquid["cooling_ok_min"]
    # the other metrics do not depend on the cooling (no PUE or cost effect)
    for key in ("tokens_per_s", "cost_per_mtoken_usd", "provisioned_power_w"):
        assert air[key] == liquid[key] == unstated[key], key


def test_per_gw_is_per_mw_times_1000_on_provisioned_power() -> None:
    m = _as_built("h100-sxm", 128)
    assert m["tokens_per_s_per_gw"] == m["tokens_per_s_per_mw"] * 1000.0
    assert m["provisioned_power_w"] > m["cluster_power_w"]  # chips at TDP, not as drawn
    assert m["tokens_per_s_per_gw"] == pytest.approx(
        m["tokens_per_s"] / (m["provisioned_power_w"] / 1e9), rel=1e-12)
    assert m["tokens_per_s_per_gw"] < m["tokens_per_s"] / (m["cluster_power_w"] / 1e9)


def test_cooling_parameter_neutral_value_keeps_old_fingerprints() -> None:
    assert DESIGN_PARAMETERS["cooling"].choices == ("unstated", "air", "liquid")
    assert DEFAULT_DESIGN["cooling"] == NEUTRAL_VALUES["cooling"] == "unstated"
    space = load_search_space(REPO / "search_spaces" / "quickstart.toml")
    assert space.base["cooling"] == "unstated"
    before = replace(space, base={k: v for k, v in space.base.items() if k != "cooling"})
    assert space.fingerprint() == before.fingerprint()
    assert replace(space, base={**space.base, "cooling": "air"}).fingerprint() != \
        space.fingerprint()
    # and the neutral value builds the cluster of before: no cooling stated
    old = {k: v for k, v in DEFAULT_DESIGN.items() if k != "cooling"}
    assert design_to_cluster(DEFAULT_DESIGN) == design_to_cluster(old)
    assert design_to_cluster(DEFAULT_DESIGN).cooling is None
    assert ClusterSpec(n_chips=8).cooling is None


def test_a_baseline_projects_its_platforms_cooling() -> None:
    assert project_chip(get_chip("gb200"))["cooling"] == "liquid"
    assert project_chip(get_chip("h100-sxm"))["cooling"] == "air"


def test_evaluate_cooling_air_on_gb200_prints_the_violation(capsys) -> None:
    argv = ("evaluate", "--chip", "gb200", "--workload", "llama3-8b", "--n-chips", "144",
            "--seq-len", "4096", "--global-batch", "512")
    code, out, err = run(capsys, *argv, "--cooling", "air")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.split()[:1] == ["cooling"])  # its summary line
    assert "air" in line and "does not fit" in line and "> 50 kW" in line, line
    doc = run_json(capsys, *argv, "--cooling", "air", "--json")
    assert doc["cooling"]["kind"] == "air" and doc["cooling"]["cooling_ok"] is False
    assert doc["cooling"]["rack_limit_kw"] == 50.0 and doc["cooling"]["chip_limit_w"] == 1000.0
    assert doc["cooling"]["rack_power_kw"] > 50.0
    built = run_json(capsys, *argv, "--json")  # as built: liquid, fits
    assert built["cooling"]["kind"] == "liquid" and built["cooling"]["cooling_ok"] is True
    assert built["cooling"]["chip_limit_w"] is None  # no chip limit under liquid
    assert built["tokens_per_s_per_gw"] == built["tokens_per_s_per_mw"] * 1000.0
    assert "tokens_per_s_per_mw" in built and "provisioned_power_w" in built


def test_evaluate_bad_cooling_exits_2(capsys) -> None:
    code, _, err = run(capsys, "evaluate", "--chip", "gb200", "--workload", "llama3-8b",
                         "--cooling", "water")
    assert code == 2
    assert "--cooling" in err and "water" in err


def test_check_rejects_an_unknown_cooling() -> None:
    with pytest.raises(ValueError, match="immersion"):
        cooling.check("immersion", 10.0, 500.0)
    assert not cooling.check("air", math.nan, None).ok  # stated cooling, unknown rack
    assert cooling.check(None, math.nan, None).ok
