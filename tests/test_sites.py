"""Sites as they are built (issue 15): power per MW on provisioned power, idle chips, several
identical jobs per site, a budget split over sites, and where a cluster's watts and dollars go."""

from __future__ import annotations

import pytest

from codesign.errors import ConfigError
from codesign.model.catalog import get_chip, get_model
from codesign.model.cluster import facility
from codesign.model.perf import (
    cluster_breakdown,
    evaluate,
    job_cluster,
    overhead_w_per_chip,
    result_metrics,
    sized_cluster,
)
from codesign.model.specs import ClusterSpec, TrainJob
from codesign.search.experiment import load_experiment

H100 = get_chip("h100-sxm")
JOB = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)


def _metrics(cluster: ClusterSpec) -> dict:
    res = evaluate(H100, cluster, JOB)
    return result_metrics(H100, sized_cluster(H100, cluster), res, JOB)


def test_per_mw_divides_by_provisioned_not_drawn_power() -> None:
    m = _metrics(ClusterSpec(n_chips=1024))
    overhead = overhead_w_per_chip(H100, ClusterSpec(n_chips=1024))
    assert m["provisioned_power_w"] == pytest.approx(1024 * (700.0 + overhead) * 1.2)
    assert m["provisioned_power_w"] > m["cluster_power_w"]  # chips below their TDP
    assert m["tokens_per_s_per_mw"] == pytest.approx(
        m["tokens_per_s"] / (m["provisioned_power_w"] / 1e6))


def test_a_budget_is_what_is_provisioned_and_the_unused_chips_are_reported() -> None:
    cluster = ClusterSpec(n_chips=1, power_budget_mw=20.0)
    m = _metrics(cluster)
    assert m["provisioned_power_w"] == 20e6
    used = m["map_tp"] * m["map_pp"] * m["map_dp"] * m["map_cp"]
    assert m["idle_chips"] == m["n_chips"] - used
    assert m["cluster_power_w"] <= 20e6 * 1.0001


def test_a_site_runs_as_many_identical_jobs_as_fit() -> None:
    whole = ClusterSpec(n_chips=1000, job_chips=256)
    job, replicas = job_cluster(whole)
    assert (job.n_chips, replicas) == (256, 3)
    alone = evaluate(H100, job, JOB)
    res = evaluate(H100, whole, JOB)
    assert res.mapping == alone.mapping
    assert res.tokens_per_s == pytest.approx(3 * alone.tokens_per_s)
    assert res.cluster_power_w == pytest.approx(alone.cluster_power_w / 256 * 1000)
    m = result_metrics(H100, whole, res, JOB)
    used = alone.mapping.tp * alone.mapping.pp * alone.mapping.dp * alone.mapping.cp
    assert m["idle_chips"] == 1000 - 3 * used


def test_a_budget_splits_over_whole_sites() -> None:
    cluster = ClusterSpec(n_chips=1, power_budget_mw=250.0, site_mw=100.0)
    sized = sized_cluster(H100, cluster)
    per_site = facility.chips_for_budget(100.0, 700.0, 400.0, "fat-tree", 1.0, 110.0, 1.2)
    assert sized.n_chips == 2 * per_site  # two whole 100 MW sites; 50 MW left unbuilt
    job, replicas = job_cluster(sized)
    assert (job.n_chips, replicas) == (per_site, 2)
    job, replicas = job_cluster(ClusterSpec(n_chips=sized.n_chips, power_budget_mw=250.0,
                                            site_mw=100.0, job_chips=per_site // 3))
    assert replicas == 2 * 3  # jobs never span two sites


def test_the_breakdown_adds_up_to_the_cluster() -> None:
    cluster = ClusterSpec(n_chips=2048)
    res = evaluate(H100, cluster, JOB)
    b = cluster_breakdown(H100, cluster, res)
    assert sum(b["power_w"].values()) == pytest.approx(res.cluster_power_w)
    assert b["power_w"]["cooling"] == pytest.approx(
        (b["power_w"]["chips"] + b["power_w"]["hosts"] + b["power_w"]["network"]) * 0.2)
    assert b["capex_usd"]["chips"] == 2048 * 28000.0
    assert all(v > 0 for v in b["capex_usd"].values())


def test_site_mw_needs_a_budget(tmp_path) -> None:
    exp = tmp_path / "e.toml"
    space = tmp_path / "s.toml"
    space.write_text('[parameters]\nclock_ghz = { low = 1.0, high = 2.0 }\n')
    exp.write_text(
        '[experiment]\nname = "x"\nsearch_space = "s.toml"\n'
        '[workload]\nkind = "train"\nmodel = "llama3-8b"\nseq_len = 4096\nglobal_batch = 256\n'
        '[cluster]\nn_chips = 64\nsite_mw = 100.0\n'
        '[objectives]\ntokens_per_s = "maximize"\n')
    with pytest.raises(ConfigError, match="site_mw"):
        load_experiment(exp)


def test_evaluate_site_flags(capsys) -> None:
    from codesign.cli import main

    assert main(["evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                 "--site-mw", "100"]) == 2
    assert "--site-mw" in capsys.readouterr().err
    assert main(["evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b", "--n-chips",
                 "1024", "--job-chips", "256", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["n_chips"] == 1024 and doc["idle_chips"] >= 0
    assert set(doc["cluster_breakdown"]["power_w"]) == {"chips", "hosts", "network", "cooling"}


@pytest.mark.parametrize("chip_id", ["gb200", "h800", "b200", "tpu-v5p", "maia100", "mi300x"])
def test_catalog_chips_project_into_the_design_space(chip_id: str) -> None:
    """GB200 and H800 publish no compute-unit count; their stated sibling values complete them
    before the projection, so they can be an experiment's baselines."""
    from codesign.search.design import project_chip

    design = project_chip(get_chip(chip_id))
    assert design["compute_units"] > 0 and design["macs_per_unit"] > 0


def test_each_site_has_its_own_network() -> None:
    """10 GW over 1 GW sites is ten 1 GW sites: ten networks, not one fabric of them all."""
    from codesign.model.cluster import build

    one = sized_cluster(H100, ClusterSpec(n_chips=1, power_budget_mw=100.0))
    ten = sized_cluster(H100, ClusterSpec(n_chips=1, power_budget_mw=1000.0, site_mw=100.0))
    assert ten.n_chips == 10 * one.n_chips
    e1, e10 = build.equipment(H100, one), build.equipment(H100, ten)
    assert e10.power_w == pytest.approx(10 * e1.power_w)
    assert e10.switches == 10 * e1.switches
