"""Clusters as built (issue 15): shared Ethernet ports, platforms by catalog id, tori with their
cables, hosts from the catalog, and the searched parameters that choose them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codesign.model.catalog import get_chip, get_model
from codesign.model.catalog.assume import explain_unknowns
from codesign.model.cluster import build, network
from codesign.model.perf import cluster_breakdown, evaluate, overhead_w_per_chip
from codesign.model.specs import ClusterSpec, TrainJob
from codesign.search.design import DEFAULT_DESIGN, design_to_chip, design_to_cluster, project_chip

JOB = TrainJob(get_model("llama3-70b"), seq_len=8192, global_batch=1024)


def _built(chip_id: str, n: int = 1024):
    return build.as_built(explain_unknowns(get_chip(chip_id))[0], n)


def test_maia_ports_split_and_no_nic() -> None:
    maia, cluster = _built("maia100")
    assert (maia.shared_ports, maia.port_gbps, cluster.scaleout_ports) == (12, 400.0, 4)
    wired = build.port_split(maia, cluster)
    assert wired.scaleout_gbps == 4 * 400.0
    assert wired.scaleup_gbps == 8 * 400.0 / 8 * 2  # GB/s bidirectional
    shared = build.equipment(maia, cluster)
    as_nics = network.network(1024, 4800.0, "fat-tree", 1.0)  # the old pricing: 12 NIC ports
    assert shared.power_w < as_nics.power_w / 3
    assert shared.capex_usd < as_nics.capex_usd / 3


def test_more_scaleout_ports_cost_more_network_and_leave_less_scaleup() -> None:
    maia, cluster = _built("maia100")
    two = replace(cluster, scaleout_ports=2)
    eight = replace(cluster, scaleout_ports=8)
    assert build.equipment(maia, eight).power_w > build.equipment(maia, two).power_w
    assert build.port_split(maia, eight).scaleup_gbps < build.port_split(maia, two).scaleup_gbps


def test_maia_against_h100_on_the_same_job() -> None:
    """The issue's figure: Maia 100 drew 2,528 W per chip of cluster (12 NIC ports in a
    3-tier fat-tree) against H100's 946 W. As built, its network is a few hundred W."""
    out = {}
    for chip_id in ("maia100", "h100-sxm"):
        chip, cluster = _built(chip_id)
        res = evaluate(chip, cluster, JOB)
        b = cluster_breakdown(chip, cluster, res)["power_w"]
        out[chip_id] = {k: v / 1024 for k, v in b.items()}
        assert sum(b.values()) == pytest.approx(res.cluster_power_w)
    assert out["maia100"]["network"] < 400
    assert sum(out["maia100"].values()) < 1300


def test_tori_pay_their_cables_and_ocs() -> None:
    tpu, cluster = _built("tpu-v5p", 4096)
    assert cluster.topology == "torus-3d" and cluster.ocs
    with_cables = build.equipment(tpu, cluster)
    bare = network.network(4096, tpu.scaleout_gbps, "torus-3d", 1.0, switched_scaleup=False)
    assert with_cables.power_w > bare.power_w and with_cables.capex_usd > bare.capex_usd
    assert with_cables.ocs_ports > 0 and with_cables.optical_links > 0


@pytest.mark.parametrize("chip_id", ["gb200", "b200", "tpu-v4", "tpu-v5p", "mi300x",
                                     "mi355x", "trainium2", "maia100", "gaudi3", "tpu-v7"])
def test_baselines_evaluate_by_id_in_their_platform(chip_id: str) -> None:
    chip, cluster = _built(chip_id, 1024)
    res = evaluate(chip, cluster, JOB)
    assert res.feasible, res.reason
    assert cluster.host_cpu and cluster.chips_per_rack


def test_gb200_is_an_nvl72_with_grace_hosts() -> None:
    chip, cluster = _built("gb200")
    assert chip.scaleup_domain == 72 and cluster.host_cpu == "grace"
    assert cluster.chips_per_rack == 72


def test_host_cpu_and_chips_per_host_are_design_parameters() -> None:
    generic = design_to_cluster(DEFAULT_DESIGN)
    assert generic.host_power_w_per_chip == 110.0 and generic.host_usd_per_chip is None
    grace = design_to_cluster({**DEFAULT_DESIGN, "host_cpu": "grace", "chips_per_host": 2})
    cobalt = design_to_cluster({**DEFAULT_DESIGN, "host_cpu": "cobalt-100", "chips_per_host": 8})
    assert grace.host_cpu == "grace" and grace.host_power_w_per_chip > cobalt.host_power_w_per_chip
    assert overhead_w_per_chip(design_to_chip(DEFAULT_DESIGN), grace) > overhead_w_per_chip(
        design_to_chip(DEFAULT_DESIGN), generic)


def test_a_shared_port_design_needs_no_nic() -> None:
    design = {**DEFAULT_DESIGN, "shared_ports": 16, "port_gbps": 400.0, "scaleout_ports": 4,
              "scaleup_fabric": "ethernet", "chips_per_rack": 32, "scaleup_domain": 32}
    chip, cluster = design_to_chip(design), design_to_cluster(design)
    assert chip.shared_ports == 16 and chip.scaleout_gbps == 0.0
    assert build.port_split(chip, cluster).scaleout_gbps == 1600.0
    assert evaluate(chip, cluster, JOB).feasible


def test_the_projection_of_a_shared_port_chip_keeps_its_ports() -> None:
    design = project_chip(get_chip("maia100"))
    assert (design["shared_ports"], design["scaleout_ports"]) == (12, 4)
    assert design["scaleup_fabric"] == "ethernet" and design["host_cpu"] == "cobalt-100"


def test_the_generic_cluster_is_unchanged() -> None:
    """No platform, no new parameter: the NIC + fat-tree network of before, to the watt."""
    chip = get_chip("h100-sxm")
    cluster = ClusterSpec(n_chips=16384)
    net = network.network(16384, 400.0, "fat-tree", 1.0)
    assert build.equipment(chip, cluster).power_w == net.power_w
    assert build.equipment(chip, cluster).capex_usd == net.capex_usd
