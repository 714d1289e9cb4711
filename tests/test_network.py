"""The network equipment model: today's scale-out figures pinned, and the built-as-built
fabrics (Ethernet scale-up, shared on-die ports, tori with and without OCS) against the
relations they must keep."""

from __future__ import annotations

import pytest

from codesign.model import tech
from codesign.model.cluster.network import (
    COPPER_W_PER_800G,
    SCALEUP_SWITCH_USD_PER_CHIP,
    SCALEUP_SWITCH_W_PER_CHIP,
    Equipment,
    Network,
    direct_scaleup,
    ethernet_scaleup,
    network,
    scaleout_fabric,
    shared_port_network,
    switch_radix_at,
    torus_cabling,
)

F, P = tech.FACILITY, tech.PRICES


def test_network_regression_pinned() -> None:
    """Golden outputs depend on these byte for byte (values read before the extension)."""
    assert network(16384, 400, "fat-tree", 1.0) == Network(
        tiers=3, switches=640, optics=40960, nic_ports_400g=16384.0, power_w=2639360.0,
        capex_usd=128512000.0)
    assert network(1024, 4800, "fat-tree", 1.0) == Network(
        tiers=3, switches=480, optics=30720, nic_ports_400g=12288.0, power_w=1528960.0,
        capex_usd=79488000.0)
    assert network(1024, 1600, "fat-tree", 1.0, switched_scaleup=False) == Network(
        tiers=3, switches=160, optics=10240, nic_ports_400g=4096.0, power_w=496000.0,
        capex_usd=25984000.0)
    assert SCALEUP_SWITCH_W_PER_CHIP == 40.0 and SCALEUP_SWITCH_USD_PER_CHIP == 1500.0


def test_equipment_add_and_repeat() -> None:
    a = Equipment(1, 2, 3, 6, 0, 10.0, 100.0)
    b = Equipment(4, 0, 1, 2, 8, 5.5, 1.0)
    assert a + b == Equipment(5, 2, 4, 8, 8, 15.5, 101.0)
    assert a + Equipment() == a
    assert 3 * a == a + a + a == a * 3


def test_radix_follows_port_speed() -> None:
    assert switch_radix_at(800.0) == 64
    assert switch_radix_at(400.0) == 128
    assert switch_radix_at(200.0) == 256


def test_domain_within_one_rack_has_no_optics() -> None:
    eq = ethernet_scaleup(256, domain=32, up_gbps_per_chip=3200.0, chips_per_rack=32,
                          port_gbps=400.0)
    assert eq.optics == 0 and eq.optical_links == 0
    assert eq.copper_links == 256 * 8  # every chip port one DAC to a switch in its rack
    assert eq.switches == 8 * 2  # 32 chips x 8 ports = 256 ports = two 128x400G switches
    assert eq.power_w == pytest.approx(16 * F.switch_w + 2048 * COPPER_W_PER_800G / 2)


def test_domain_spanning_racks_pays_optics() -> None:
    inside = ethernet_scaleup(256, 32, 3200.0, chips_per_rack=32, port_gbps=400.0)
    across = ethernet_scaleup(256, 32, 3200.0, chips_per_rack=16, port_gbps=400.0)
    assert across.optical_links > 0 and across.optics == 2 * across.optical_links
    assert across.switches == inside.switches
    assert across.power_w / 256 > inside.power_w / 256
    assert across.capex_usd / 256 > inside.capex_usd / 256


def test_domain_larger_than_radix_is_two_tier() -> None:
    # 72 chips x 9 ports of 800G = 648 ports > 64: leaves 21 (32 down each), spines 11
    eq = ethernet_scaleup(72, 72, 7200.0, chips_per_rack=72)
    assert eq.switches == 21 + 11 and eq.optics == 0
    two_racks = ethernet_scaleup(72, 72, 7200.0, chips_per_rack=36)
    assert two_racks.optical_links == 21 * 32 // 2  # half the leaf-spine links leave


def test_more_up_bandwidth_more_switches() -> None:
    low = ethernet_scaleup(1024, 64, 1600.0, chips_per_rack=64)
    high = ethernet_scaleup(1024, 64, 6400.0, chips_per_rack=64)
    assert high.switches > low.switches
    assert high.power_w > low.power_w and high.capex_usd > low.capex_usd


def test_no_scaleup_without_domain_or_bandwidth() -> None:
    assert ethernet_scaleup(1024, 1, 3200.0, 32) == Equipment()
    assert ethernet_scaleup(1024, 32, 0.0, 32) == Equipment()


def test_scaleout_fabric_is_network_less_the_scaleup_constant() -> None:
    net = network(4096, 800.0, "fat-tree", 1.0)
    eq = scaleout_fabric(4096, 800.0, "fat-tree", 1.0, nics=True)
    assert eq.switches == net.switches and eq.optics == net.optics
    assert eq.power_w == pytest.approx(net.power_w - 4096 * SCALEUP_SWITCH_W_PER_CHIP)
    assert eq.capex_usd == pytest.approx(net.capex_usd - 4096 * SCALEUP_SWITCH_USD_PER_CHIP)


@pytest.mark.parametrize("port_gbps", [800.0, 400.0])
def test_shared_ports_have_no_nic(port_gbps: float) -> None:
    """Scale-out through on-die ports: no NIC, so at least the NIC share cheaper than
    :func:`network` of the same scale-out bandwidth (its scale-up constant left out)."""
    n, out_gbps = 1024, 1600.0
    out_ports = int(out_gbps / port_gbps)
    shared = shared_port_network(n, domain=8, shared_ports=out_ports + 7, port_gbps=port_gbps,
                                 scaleout_ports=out_ports, chips_per_rack=32,
                                 topology="fat-tree", oversubscription=1.0, scaleup="direct")
    up = direct_scaleup(n, 8, 7, port_gbps, 32)
    net = network(n, out_gbps, "fat-tree", 1.0, switched_scaleup=False)
    nic_w = net.nic_ports_400g * F.nic_w_per_400g
    nic_usd = net.nic_ports_400g * P.nic_usd_per_400g
    assert up.switches == 0
    assert net.power_w - (shared.power_w - up.power_w) >= nic_w - 1e-6
    assert net.capex_usd - (shared.capex_usd - up.capex_usd) >= nic_usd - 1e-6
    if port_gbps == 800.0:  # same switch and ports: exactly the NICs apart
        assert shared.switches == net.switches
        assert shared.power_w - up.power_w == pytest.approx(net.power_w - nic_w)


def test_shared_ports_count_each_switch_once() -> None:
    args = dict(n_chips=1024, domain=32, shared_ports=12, port_gbps=400.0, scaleout_ports=4,
                chips_per_rack=32, topology="fat-tree", oversubscription=1.0)
    eth = shared_port_network(**args, scaleup="ethernet")
    up = ethernet_scaleup(1024, 32, 8 * 400.0, 32, port_gbps=400.0)
    out = scaleout_fabric(1024, 4 * 400.0, "fat-tree", 1.0, port_gbps=400.0)
    assert eth == up + out
    assert eth.switches == 64 + 96  # 2 per 32-chip domain; 64 leaves + 32 spines at 128x400G
    assert eth.power_w < network(1024, 4800, "fat-tree", 1.0).power_w


def test_direct_scaleup_all_to_all() -> None:
    # Gaudi 3 style: 21 ports over 8 chips -> 3 links to each of 7 peers, 8 chips in a server
    eq = direct_scaleup(64, 8, 21, 200.0, chips_per_rack=8)
    assert eq.switches == 0 and eq.optics == 0
    assert eq.copper_links == 8 * (8 * 7 // 2) * 3
    split = direct_scaleup(64, 8, 21, 200.0, chips_per_rack=4)
    assert split.optical_links == 8 * 4 * 4 * 3  # 16 cross pairs per domain x 3 links
    with pytest.raises(ValueError):
        direct_scaleup(64, 32, 8, 400.0, 32)


def test_torus_one_rack_is_all_copper() -> None:
    eq = torus_cabling(64, 6, 400.0, chips_per_rack=64, ocs=True)
    assert eq.optics == 0 and eq.ocs_ports == 0 and eq.copper_links == 64 * 3


def test_torus_with_ocs_like_tpu_v4() -> None:
    """4,096 chips in 64-chip cubes: 96 face links per cube go to the OCSes (6,144 ports)."""
    ocs = torus_cabling(4096, 6, 400.0, chips_per_rack=64, ocs=True)
    assert ocs.ocs_ports == 6144 and ocs.optical_links == 3072 and ocs.optics == 6144
    assert ocs.copper_links + ocs.optical_links == 4096 * 3 and ocs.switches == 0
    fibre = torus_cabling(4096, 6, 400.0, chips_per_rack=64, ocs=False)
    assert fibre.ocs_ports == 0 and fibre.optical_links == ocs.optical_links
    assert ocs.power_w > fibre.power_w and ocs.capex_usd > fibre.capex_usd


def test_torus_over_two_racks_wraps_one_dimension_by_fibre() -> None:
    eq = torus_cabling(128, 6, 400.0, chips_per_rack=64, ocs=False)  # a 4x4x8 torus
    assert eq.optical_links == 32  # two z-faces of 16 chips per rack, links shared
