"""Area, die split, shoreline (codesign.model.chip.area), yield and cost
(codesign.model.chip.cost)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from codesign.model import tech
from codesign.model.chip import area as area_model
from codesign.model.chip import cost
from codesign.search.design import DEFAULT_DESIGN, DESIGN_PARAMETERS

H100_ARGS = (4, 132, 2048, 80.0, "HBM3", 5, 4000.0)  # DEFAULT_DESIGN's chip resources


def _design_args(design: dict) -> tuple:
    """The arguments of area_model.estimate_area for a design dict (as design.py builds them)."""
    serdes = (float(design["scaleup_links"]) * float(design["scaleup_link_gbps"]) * 8 / 2
              + float(design["scaleout_gbps"]))
    return (float(design["process_nm"]), int(design["compute_units"]),
            int(design["macs_per_unit"]), float(design["sram_mb"]), str(design["hbm_gen"]),
            int(design["hbm_stacks"]), serdes)


# --------------------------------------------------------------------------- yield, wafer


def test_dies_per_wafer_standard_formula() -> None:
    # pi 150^2 / 100 - pi 300 / sqrt(200) = 706.9 - 66.6
    assert cost.dies_per_wafer(100.0) == pytest.approx(640.2, abs=0.5)
    assert cost.dies_per_wafer(814.0) == pytest.approx(63.5, abs=0.5)
    assert cost.dies_per_wafer(50_000.0) == 0.0
    areas = [10.0, 100.0, 400.0, 858.0]
    dpw = [cost.dies_per_wafer(a) for a in areas]
    assert dpw == sorted(dpw, reverse=True)


@pytest.mark.parametrize("model", [cost.negative_binomial_yield, cost.murphy_yield])
def test_yield_decreases_with_area_and_defect_density(model) -> None:
    by_area = [model(a, 0.1) for a in (1.0, 100.0, 400.0, 858.0)]
    assert all(0 < y <= 1 for y in by_area)
    assert by_area == sorted(by_area, reverse=True) and by_area[0] > by_area[-1]
    by_d0 = [model(400.0, d0) for d0 in (0.0, 0.05, 0.1, 0.3)]
    assert by_d0[0] == pytest.approx(1.0)
    assert by_d0 == sorted(by_d0, reverse=True) and by_d0[1] > by_d0[-1]


def test_negative_binomial_formula() -> None:
    # 800 mm^2 = 8 cm^2, D0 0.1: (1 + 0.8 / 3)^-3
    assert cost.negative_binomial_yield(800.0, 0.1) == pytest.approx((1 + 0.8 / 3) ** -3)
    # clustering makes large dies yield better than Poisson e^-AD
    assert cost.negative_binomial_yield(800.0, 0.1) > math.exp(-0.8)
    with pytest.raises(ValueError, match="alpha"):
        cost.negative_binomial_yield(100.0, 0.1, alpha=0.0)


# --------------------------------------------------------------------------- area


def test_area_breakdown_sums_and_scales_with_resources() -> None:
    parts = area_model.area_breakdown_mm2(*H100_ARGS)
    assert set(parts) == {"mac", "vector", "unit", "sram", "hbm_phy", "serdes", "misc"}
    assert sum(parts.values()) == pytest.approx(area_model.compute_area_mm2(*H100_ARGS))
    assert parts["hbm_phy"] == 5 * tech.HBM["HBM3"].phy_mm2
    base = area_model.compute_area_mm2(*H100_ARGS)
    for i, bigger in ((1, 264), (2, 4096), (3, 160.0), (5, 6), (6, 8000.0)):
        args = list(H100_ARGS)
        args[i] = bigger
        assert area_model.compute_area_mm2(*args) > base, i
    # a newer node shrinks logic
    assert area_model.compute_area_mm2(3, *H100_ARGS[1:]) < base < area_model.compute_area_mm2(
        7, *H100_ARGS[1:])
    # explicit vector rate is used; None means 1/8 of the MACs
    assert area_model.compute_area_mm2(*H100_ARGS, 256.0) == pytest.approx(base)
    assert area_model.compute_area_mm2(*H100_ARGS, 1024.0) > base


def test_sram_area_from_tech_bitcell() -> None:
    node = tech.NODES[5]
    expect = node.sram_bitcell_um2 * 8 * 2**20 * 1e-6 / tech.SRAM_ARRAY_EFFICIENCY
    assert area_model.sram_mm2_per_mb(5) == pytest.approx(expect)


def test_bad_inputs_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="process_nm"):
        area_model.compute_area_mm2(6, 100, 1024, 10.0, "HBM3", 4, 0.0)
    with pytest.raises(ValueError, match="hbm_gen"):
        area_model.compute_area_mm2(5, 100, 1024, 10.0, "HBM9", 4, 0.0)
    with pytest.raises(ValueError, match="sram_mb"):
        area_model.compute_area_mm2(5, 100, 1024, -1.0, "HBM3", 4, 0.0)
    with pytest.raises(ValueError, match="die_mm2"):
        area_model.split_dies(0.0)


def test_split_dies_keeps_every_die_under_the_reticle() -> None:
    assert area_model.split_dies(500.0) == (1, 500.0)
    assert area_model.split_dies(tech.RETICLE_MM2) == (1, tech.RETICLE_MM2)
    for total in (859.0, 1200.0, 1700.0, 2600.0, 10_000.0, 1e6):
        n, die = area_model.split_dies(total)
        assert n >= 2 and die <= tech.RETICLE_MM2
        assert n * die == pytest.approx(total * (1 + tech.D2D_AREA_FRACTION))
        # the fewest dies: one fewer would not fit
        assert total * (1 + tech.D2D_AREA_FRACTION) / (n - 1) > tech.RETICLE_MM2


def test_design_over_the_reticle_is_split() -> None:
    big = area_model.estimate_area(4, 240, 2048, 120.0, "HBM3e", 8, 8000.0)
    assert tech.RETICLE_MM2 < big.total_mm2 < 2 * tech.RETICLE_MM2 / (1 + tech.D2D_AREA_FRACTION)
    assert big.n_dies == 2 and big.die_mm2 <= tech.RETICLE_MM2
    assert big.silicon_mm2 == pytest.approx(big.total_mm2 * (1 + tech.D2D_AREA_FRACTION))
    # the legacy per-die function agrees
    assert area_model.die_area_mm2(4, 240, 2048, 120.0, 8, 8000.0, "HBM3e") == pytest.approx(
        big.die_mm2)


# --------------------------------------------------------------------------- shoreline


def test_shoreline_h100_sized_die() -> None:
    n = area_model.max_hbm_stacks(814.0, 1, "HBM3")
    assert 5 <= n < 12
    assert area_model.shoreline_ok(814.0, 1, "HBM3e", 6)  # H200: six stacks on the GH100 die
    assert area_model.max_hbm_stacks(800.0, 2, "HBM3e") >= 8  # B200: 4 per die
    reason = area_model.shoreline_reason(814.0, 1, "HBM3", 12)
    assert reason == f"HBM stacks exceed die edge (shoreline): 12 > {n}"
    assert not area_model.shoreline_ok(814.0, 1, "HBM3", 12)
    assert area_model.shoreline_reason(10.0, 1, "HBM3", 0) == ""


def test_shoreline_grows_with_die_and_dies() -> None:
    stacks = [area_model.max_hbm_stacks(a, 1, "HBM3") for a in (100.0, 300.0, 600.0, 858.0)]
    assert stacks == sorted(stacks) and stacks[0] < stacks[-1]
    assert area_model.max_hbm_stacks(600.0, 4, "HBM3") > area_model.max_hbm_stacks(600.0, 2, "HBM3")


def test_estimate_area_reports_the_shoreline_reason() -> None:
    ok = area_model.estimate_area(*H100_ARGS)
    assert ok.shoreline_ok and ok.reason == "" and ok.n_dies == 1
    args = list(H100_ARGS)
    args[5] = 16
    bad = area_model.estimate_area(*args)
    assert not bad.shoreline_ok
    assert bad.reason.startswith("HBM stacks exceed die edge (shoreline): 16 > ")


# --------------------------------------------------------------------------- cost


def test_chip_cost_legacy_signature_and_parts() -> None:
    die = area_model.die_area_mm2(4, 132, 2048, 80.0, 5, 4000.0)  # design.py's positional call
    total = cost.chip_cost_usd(4, die, "HBM3", 80.0, 5)
    parts = cost.cost_breakdown_usd(4, die, "HBM3", 80.0, 5)
    assert total == pytest.approx(sum(parts.values()))
    assert parts["hbm"] == 80.0 * tech.HBM["HBM3"].usd_per_gb
    assert 1000 < total < 10_000  # press estimates of an H100's manufacturing cost: ~3,300
    assert cost.chip_cost_usd(4, die, "HBM3", 80.0, 5, n_dies=2) > total


def test_cost_rises_with_area_hbm_and_stacks() -> None:
    base = cost.chip_cost_usd(4, 600.0, "HBM3", 80.0, 5)
    assert cost.chip_cost_usd(4, 800.0, "HBM3", 80.0, 5) > base
    assert cost.chip_cost_usd(4, 600.0, "HBM3", 120.0, 5) > base
    assert cost.chip_cost_usd(4, 600.0, "HBM3", 80.0, 6) > base
    costs = [cost.die_cost_usd(4, a) for a in (50.0, 200.0, 400.0, 858.0)]
    assert costs == sorted(costs)
    # per mm^2 too: yield makes big dies dearer per unit area
    assert costs[-1] / 858.0 > costs[0] / 50.0
    assert cost.package_cost_usd(600.0, 2, 8) > cost.package_cost_usd(600.0, 1, 8)
    assert cost.package_cost_usd(100.0, 1, 0) < cost.package_cost_usd(100.0, 1, 1)


def test_cost_monotonic_in_wafer_price(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cost.chip_cost_usd(5, 600.0, "HBM3", 80.0, 5)
    node = tech.NODES[5]
    monkeypatch.setitem(tech.NODES, 5, dataclasses.replace(node, wafer_usd=2 * node.wafer_usd))
    after = cost.chip_cost_usd(5, 600.0, "HBM3", 80.0, 5)
    assert after > before
    die = cost.die_cost_usd(5, 600.0)
    monkeypatch.setitem(tech.NODES, 5, node)
    assert die == pytest.approx(2 * cost.die_cost_usd(5, 600.0))


def test_huge_package_cost_stays_finite_and_monotonic() -> None:
    costs = [cost.package_cost_usd(800.0, n, 8) for n in (1, 8, 12, 100)]
    assert all(math.isfinite(c) for c in costs) and costs == sorted(costs)


def _perturbations() -> list[dict]:
    designs = [dict(DEFAULT_DESIGN)]
    for name, info in DESIGN_PARAMETERS.items():
        values = info.choices if info.choices is not None else (info.low, info.high)
        for value in values:
            if value is None:
                continue
            value = int(value) if info.kind == "int" else value
            designs.append(dict(DEFAULT_DESIGN, **{name: value}))
    return designs


@pytest.mark.parametrize("design", _perturbations(),
                         ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()
                                                if DEFAULT_DESIGN[k] != v) or "default")
def test_outputs_finite_for_every_design_perturbation(design: dict) -> None:
    args = _design_args(design)
    est = area_model.estimate_area(*args)
    assert est.n_dies >= 1 and 0 < est.die_mm2 <= tech.RETICLE_MM2
    assert math.isfinite(est.total_mm2) and est.max_hbm_stacks >= 0
    assert isinstance(est.reason, str)
    gen, stacks = args[4], args[5]
    gb = stacks * tech.HBM[gen].gb_per_stack
    parts = cost.cost_breakdown_usd(args[0], est.die_mm2, gen, gb, stacks, n_dies=est.n_dies)
    for key, value in parts.items():
        assert math.isfinite(value) and value > 0, key
