"""codesign.model.catalog.platforms: host CPUs and per-chip platforms load as data, check,
and the host power/price model charges each accelerator its share."""

from __future__ import annotations

import csv
import io
import tomllib
from importlib import resources

import pytest

from codesign.model.catalog import chip_ids, get_chip
from codesign.model.catalog import platforms as plat
from codesign.model.catalog.platforms import (
    DRAM_USD_PER_GB,
    DRAM_W_PER_GB,
    HOST_BOARD_USD,
    HOST_BOARD_W,
    HostCpu,
    Platform,
    check_platforms,
    get_host,
    host_cpus,
    host_usd_per_chip,
    host_w_per_chip,
    platform_of,
    platforms,
    validate_platform,
)
from codesign.model.specs import TOPOLOGIES

REQUIRED_HOSTS = {"cobalt-100", "grace", "xeon-8480", "epyc-9654"}
REQUIRED_CHIPS = {"h100-sxm", "h200", "b200", "gb200", "mi300x", "mi355x", "tpu-v4", "tpu-v5p",
                  "tpu-v6e", "tpu-v7", "trainium2", "gaudi3", "maia100", "a100-sxm-80gb", "h800"}


def raw_table(chip_id: str) -> dict:
    """A fresh copy of one platforms.toml table, straight from the package data."""
    text = resources.files("codesign.model.catalog").joinpath("platforms.toml").read_text()
    return dict(tomllib.loads(text)[chip_id])


# ---- loading -----------------------------------------------------------------------------------
def test_hosts_load_with_typed_fields_in_file_order():
    text = resources.files("codesign.model.catalog").joinpath("hosts.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(host_cpus()) == [r["id"] for r in rows]
    assert REQUIRED_HOSTS <= set(host_cpus())
    for host in host_cpus().values():
        assert isinstance(host, HostCpu)
        assert isinstance(host.cores, int) and isinstance(host.tdp_w, float)
        assert host.source


def test_platforms_cover_the_required_chips_and_check_passes():
    check_platforms()
    assert REQUIRED_CHIPS <= set(platforms())
    for chip_id, p in platforms().items():
        assert isinstance(p, Platform) and p.chip_id == chip_id
        assert chip_id in chip_ids()
        assert p.topology in TOPOLOGIES
        assert p.source
    assert platform_of("h100-sxm") is platforms()["h100-sxm"]


def test_a_chip_without_a_platform_has_none():
    missing = [c for c in chip_ids() if c not in platforms()]
    assert missing, "every chip has a platform: pick another example"
    assert platform_of(missing[0]) is None
    assert platform_of("no-such-chip") is None


def test_every_referenced_host_exists():
    for p in platforms().values():
        assert get_host(p.host).id == p.host


def test_unknown_host_names_the_known_ids():
    with pytest.raises(KeyError, match="grace") as err:
        get_host("pentium-4")
    assert "pentium-4" in str(err.value)


# ---- relations that must hold ------------------------------------------------------------------
def test_grace_links_by_nvlink_c2c_faster_than_pcie5():
    grace, xeon = get_host("grace"), get_host("xeon-8480")
    assert grace.accel_link == "nvlink-c2c" and xeon.accel_link == "pcie5"
    assert grace.accel_link_gbs == 450.0  # 900 GB/s bidirectional NVLink-C2C
    assert grace.accel_link_gbs > xeon.accel_link_gbs == 64.0
    pcie_hosts = [h for h in host_cpus().values() if h.accel_link.startswith("pcie")]
    assert all(h.accel_link_gbs < grace.accel_link_gbs for h in pcie_hosts)


def test_gb200_is_one_nvl72_rack_with_one_grace_per_two_gpus():
    p = platforms()["gb200"]
    assert (p.scaleup, p.scaleup_domain, p.chips_per_rack) == ("switched", 72, 72)
    assert (p.host, p.cpus_per_host, p.chips_per_host) == ("grace", 1, 2)
    assert p.chips_per_rack // p.chips_per_host == 36  # 36 Grace per rack
    assert p.cooling == "liquid" and 120.0 <= p.rack_kw <= 132.0


@pytest.mark.parametrize("chip_id", ["maia100", "gaudi3"])
def test_ethernet_on_die_chips_use_shared_ports_not_nics(chip_id):
    p = platforms()[chip_id]
    assert p.shared_ports > 0 and p.nic_gbps == 0.0
    assert 0 < p.scaleout_ports < p.shared_ports and p.port_gbps > 0


def test_gaudi3_and_maia_port_counts_match_their_chips():
    gaudi = platforms()["gaudi3"]
    assert (gaudi.shared_ports, gaudi.port_gbps, gaudi.scaleout_ports) == (24, 200.0, 3)
    assert gaudi.scaleup == "direct" and gaudi.scaleup_domain == 8
    # 24 x 200 Gb/s on-die = the 1200 GB/s bidirectional of chips.csv
    assert gaudi.shared_ports * gaudi.port_gbps / 8 * 2 == get_chip("gaudi3").scaleup_gbps
    maia = platforms()["maia100"]
    assert maia.host == "cobalt-100"
    assert maia.shared_ports * maia.port_gbps == get_chip("maia100").scaleout_gbps  # 4800


def test_nic_bandwidth_agrees_with_chips_csv_where_both_state_it():
    checked = 0
    for chip_id, p in platforms().items():
        stated = get_chip(chip_id).scaleout_gbps
        if stated and p.nic_gbps > 0:
            assert p.nic_gbps == stated, chip_id
            checked += 1
    assert checked >= 5


def test_scaleup_domain_at_least_chips_csv():
    for chip_id, p in platforms().items():
        stated = get_chip(chip_id).scaleup_domain
        if stated:
            assert p.scaleup_domain >= stated, chip_id


def test_tpu_pods_are_tori_and_only_v4_v5p_v7_use_ocs():
    for chip_id in ("tpu-v4", "tpu-v5p", "tpu-v7"):
        p = platforms()[chip_id]
        assert p.scaleup == "torus-3d" and p.ocs and p.chips_per_rack == 64
    assert platforms()["tpu-v6e"].scaleup == "torus-2d"
    assert not platforms()["tpu-v6e"].ocs
    assert [c for c, p in platforms().items() if p.ocs] == ["tpu-v4", "tpu-v5p", "tpu-v7"]


# ---- host model --------------------------------------------------------------------------------
def test_dgx_h100_like_host_share_per_gpu():
    xeon = get_host("xeon-8480")
    w = host_w_per_chip(xeon, 2, 8, 2048.0)
    assert 100.0 < w < 400.0
    assert w == pytest.approx((2 * 350.0 + 2048.0 * DRAM_W_PER_GB + HOST_BOARD_W) / 8)
    usd = host_usd_per_chip(xeon, 2, 8, 2048.0)
    assert usd == pytest.approx((2 * 10710.0 + 2048.0 * DRAM_USD_PER_GB + HOST_BOARD_USD) / 8)


def test_host_share_falls_with_more_chips_and_rises_with_dram():
    cobalt = get_host("cobalt-100")
    assert host_w_per_chip(cobalt, 1, 8, 768.0) < host_w_per_chip(cobalt, 1, 4, 768.0)
    assert host_w_per_chip(cobalt, 1, 4, 1536.0) > host_w_per_chip(cobalt, 1, 4, 768.0)
    assert host_usd_per_chip(cobalt, 2, 4, 768.0) > host_usd_per_chip(cobalt, 1, 4, 768.0)


@pytest.mark.parametrize("args", [(1, 0, 100.0), (0, 4, 100.0), (1, 4, -1.0)])
def test_host_share_rejects_nonsense(args):
    with pytest.raises(ValueError):
        host_w_per_chip(get_host("grace"), *args)


# ---- corrupted data raises naming the key -----------------------------------------------------
def test_a_valid_table_round_trips():
    assert validate_platform("gaudi3", raw_table("gaudi3")) == platforms()["gaudi3"]


@pytest.mark.parametrize(("key", "value"), [
    ("scaleout_ports", 25),        # more than the 24 shared ports
    ("host", "pentium-4"),         # not in hosts.csv
    ("topology", "hypercube"),     # not in specs.TOPOLOGIES
    ("scaleup", "nvlink"),         # not in SCALEUPS
    ("cooling", "immersion"),
    ("chips_per_host", 0),
    ("chips_per_host", "8"),       # wrong type
    ("nic_gbps", -1.0),
    ("ocs", True),                 # OCS on a non-torus scale-up
    ("chips_per_rack", 30),        # not a multiple of 8 per host
    ("port_gbps", 0.0),            # shared ports without a port speed
    ("source", "  "),
])
def test_corrupted_table_raises_naming_chip_and_key(key, value):
    table = raw_table("gaudi3")
    table[key] = value
    with pytest.raises(RuntimeError, match=key) as err:
        validate_platform("gaudi3", table)
    assert "gaudi3" in str(err.value)


def test_missing_unknown_key_and_unknown_chip_raise():
    table = raw_table("h100-sxm")
    del table["rack_kw"]
    with pytest.raises(RuntimeError, match="'h100-sxm': rack_kw is missing"):
        validate_platform("h100-sxm", table)
    with pytest.raises(RuntimeError, match="colour"):
        validate_platform("h100-sxm", {**raw_table("h100-sxm"), "colour": "green"})
    with pytest.raises(RuntimeError, match="chip_id"):
        validate_platform("h100-pcie", raw_table("h100-sxm"))
    no_path = {**raw_table("h100-sxm"), "nic_gbps": 0.0}
    with pytest.raises(RuntimeError, match="no scale-out path"):
        validate_platform("h100-sxm", no_path)


def test_check_platforms_catches_a_bad_host_row(monkeypatch):
    good = host_cpus()
    bad = dict(good)
    bad["grace"] = HostCpu(**{**good["grace"].__dict__, "tdp_w": 0.0})
    monkeypatch.setattr(plat, "host_cpus", lambda: bad)
    with pytest.raises(RuntimeError, match="'grace': tdp_w"):
        check_platforms()
    bad["grace"] = HostCpu(**{**good["grace"].__dict__, "accel_link": "cxl"})
    with pytest.raises(RuntimeError, match="accel_link"):
        check_platforms()
    bad["grace"] = good["grace"]
    bad["xeon-8480"] = HostCpu(**{**good["xeon-8480"].__dict__, "accel_link_gbs": 128.0})
    with pytest.raises(RuntimeError, match="accel_link_gbs"):
        check_platforms()
