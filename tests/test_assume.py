"""codesign.model.catalog.assume: stated values for the cells chips.csv leaves empty (issue 12).

Rules, in order, only for fields that are None: (a) same silicon, (b) SRAM per compute unit
of the vendor's reference chip, (c) the usual platform NIC per chip, (d) TDP = the model's
maximum draw (not power-limited); energy fallbacks are named for power rows.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from codesign.model import catalog
from codesign.model.catalog.assume import (
    SCALEOUT_GBPS,
    SIBLING_FIELDS,
    SIBLINGS,
    VENDOR_SCALEOUT_GBPS,
    energy_fallbacks,
    explain_unknowns,
    fill_unknowns,
    max_draw_w,
)
from codesign.model.chip import datasheet as chip_area
from codesign.model.chip import power
from codesign.model.perf import evaluate
from codesign.model.specs import ClusterSpec, TrainJob


def test_a_chip_without_unknowns_comes_back_unchanged() -> None:
    for chip_id in ("h100-sxm", "a100-sxm-80gb", "h200"):
        chip = catalog.get_chip(chip_id)
        done, assumed = fill_unknowns(chip)
        assert done == chip and assumed == {}


def test_only_none_fields_are_filled_and_every_fill_is_explained() -> None:
    for chip in catalog.chips():
        done, why = explain_unknowns(chip)
        for f in fields(chip):
            before, after = getattr(chip, f.name), getattr(done, f.name)
            if before is not None:
                assert after == before, (chip.id, f.name)
            elif f.name in why:
                assert after == why[f.name].value and why[f.name].reason, (chip.id, f.name)
            else:
                assert after is None, (chip.id, f.name)
        assert fill_unknowns(chip) == (done, {k: a.value for k, a in why.items()})


def test_rule_a_h800_is_the_h100_die_with_its_own_nvlink() -> None:
    h800, h100 = catalog.get_chip("h800"), catalog.get_chip("h100-sxm")
    done, why = explain_unknowns(h800)
    assert SIBLINGS["h800"][0] == "h100-sxm"
    for name in ("compute_units", "clock_ghz", "sram_mb", "tdp_w", "hbm_stacks"):
        assert getattr(done, name) == getattr(h100, name)
        assert "h100-sxm" in why[name].reason
    assert done.scaleup_gbps == h800.scaleup_gbps == 400.0  # its own, cut NVLink
    assert done.tflops_bf16 == h800.tflops_bf16
    assert "scaleup_gbps" not in why and "tflops_bf16" not in why


def test_rule_a_500w_h100_keeps_its_limit_and_takes_h100_peak() -> None:
    chip = catalog.get_chip("h100-sxm-96gb-500w")
    done, why = explain_unknowns(chip)
    h100 = catalog.get_chip("h100-sxm")
    assert done.tdp_w == 500.0 and "tdp_w" not in why
    assert done.tflops_bf16 == h100.tflops_bf16 and done.tflops_fp8 == h100.tflops_fp8
    assert done.hbm_gb == 96.0 and done.hbm_tbps == 2.4  # its own memory
    assert set(why) <= set(SIBLING_FIELDS)


def test_rule_a_then_b_gb200_takes_b200_units_then_sram_per_unit() -> None:
    """Order matters: GB200 has no SM count, B200 has one, neither has SRAM."""
    done, why = explain_unknowns(catalog.get_chip("gb200"))
    assert done.compute_units == catalog.get_chip("b200").compute_units == 148
    assert done.sram_mb == pytest.approx(chip_area.TYPICAL_SRAM_MB_PER_UNIT * 148, abs=0.05)
    assert "per compute unit" in why["sram_mb"].reason
    assert done.tdp_w == 1200.0 and "tdp_w" not in why  # its own rating


def test_rule_b_sram_per_unit() -> None:
    done, why = explain_unknowns(catalog.get_chip("b200"))
    assert done.sram_mb == pytest.approx(79.4 / 132 * 148, abs=0.05)
    assert "H100" in why["sram_mb"].reason
    # no compute units, no rule b
    nameless = replace(catalog.get_chip("b200"), id="x", compute_units=None)
    assert "sram_mb" not in explain_unknowns(nameless)[1]


@pytest.mark.parametrize(("chip_id", "gbps"), [
    ("b200", 400.0), ("gb200", 400.0), ("mi300x", 400.0), ("tpu-v6e", 100.0), ("tpu-v7", 100.0),
])
def test_rule_c_platform_nic_per_chip(chip_id: str, gbps: float) -> None:
    done, why = explain_unknowns(catalog.get_chip(chip_id))
    assert done.scaleout_gbps == gbps == SCALEOUT_GBPS[chip_id][0]
    assert SCALEOUT_GBPS[chip_id][1] in why["scaleout_gbps"].reason


def test_rule_c_vendor_fallback_and_no_rule() -> None:
    tpu = replace(catalog.get_chip("tpu-v7"), id="tpu-next", scaleout_gbps=None)
    assert fill_unknowns(tpu)[0].scaleout_gbps == VENDOR_SCALEOUT_GBPS["Google"][0] == 50.0
    other = replace(catalog.get_chip("h100-sxm"), id="x", vendor="Nobody", scaleout_gbps=None)
    done, assumed = fill_unknowns(other)
    assert done.scaleout_gbps is None and assumed == {}


def test_rule_d_tdp_is_the_maximum_draw_so_the_chip_never_throttles() -> None:
    done, why = explain_unknowns(catalog.get_chip("tpu-v7"))
    watts, _notes = max_draw_w(done)
    assert done.tdp_w == pytest.approx(watts, abs=0.05)
    assert "not power-limited" in why["tdp_w"].reason
    assert "process_nm 4" in why["tdp_w"].reason  # the energy fallbacks it rests on
    job = TrainJob(catalog.get_model("llama3-8b"), seq_len=4096, global_batch=256,
                   precision="fp8")
    res = evaluate(done, ClusterSpec(n_chips=64), job)
    assert res.feasible, res.reason
    assert res.clock_fraction == 1.0 and res.chip_power_w <= done.tdp_w


def test_rule_d_bounds_the_sustained_peak() -> None:
    """Full bandwidth and the hungriest precision: at least the TDP model's sustained peak."""
    h100 = catalog.get_chip("h100-sxm")
    assert max_draw_w(h100)[0] >= power.tdp_w_from_chip(h100)
    assert max_draw_w(catalog.get_chip("wse3")) is None  # no peak FLOPS published
    published = replace(catalog.get_chip("tpu-v5p"), tdp_w=350.0)
    assert fill_unknowns(published)[0].tdp_w == 350.0


def test_energy_fallbacks_are_named() -> None:
    assert energy_fallbacks(catalog.get_chip("h100-sxm")) == {}
    tpu = explain_unknowns(catalog.get_chip("tpu-v6e"))[0]
    fb = energy_fallbacks(tpu)
    assert fb["process_nm"].value == 4 and fb["hbm_gen"].value == "HBM3"
    assert "silicon_mm2" in fb and "clock_ghz" in fb
    assert all(a.reason for a in fb.values())
