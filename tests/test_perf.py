"""codesign.model.perf: the Python API over the kernels (evaluate, evaluate_designs) and the design
-> chip estimates it relies on."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from codesign.model import pack
from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout
from codesign.model.perf import evaluate
from codesign.model.specs import ClusterSpec, Mapping, TrainJob
from codesign.search.design import DEFAULT_DESIGN, design_to_chip, design_to_cluster
from codesign.search.evaluate import evaluate_designs

LLAMA8B = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)
H100 = get_chip("h100-sxm")


@pytest.fixture(scope="module")
def h100_64():
    return evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B)


def test_evaluate_h100_64_llama8b(h100_64):
    res = h100_64
    assert res.feasible and res.reason == ""
    mp = res.mapping
    assert min(mp.tp, mp.pp, mp.dp, mp.cp, mp.ep, mp.vpp, mp.micro_batch) >= 1
    assert mp.tp * mp.pp * mp.dp * mp.cp <= 64
    assert LLAMA8B.global_batch % (mp.dp * mp.micro_batch) == 0
    assert mp.recompute in ("none", "selective", "full") and mp.zero in (0, 1, 2, 3)
    assert 0 < res.mfu < 1
    assert res.tokens_per_s == pytest.approx(res.tokens_per_s_per_chip * 64, rel=1e-12)
    assert res.tokens_per_s == pytest.approx(8192 * 512 / res.step_time_s, rel=1e-12)
    assert 0 < res.memory_gb_per_chip <= 80.0
    assert 0 < res.chip_power_w <= H100.tdp_w
    assert res.cluster_power_w > 64 * res.chip_power_w  # hosts and PUE on top
    assert res.tokens_per_joule == pytest.approx(res.tokens_per_s / res.cluster_power_w)
    assert 0 < res.n_feasible <= res.n_candidates
    assert all(math.isfinite(v) and v >= 0 for v in res.breakdown_s.values())
    assert res.breakdown_s["compute"] > 0


def test_fixed_mapping_is_honoured(h100_64):
    res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, Mapping(tp=2, pp=2))
    assert res.feasible
    assert (res.mapping.tp, res.mapping.pp) == (2, 2)
    assert res.mapping.sequence_parallel is True  # on whenever tp > 1
    assert res.n_candidates < h100_64.n_candidates
    assert res.step_time_s >= h100_64.step_time_s  # a restriction cannot beat the free search
    # fully fixed: one candidate, exactly that mapping (issue 12 added two searched fields,
    # ep_overlap and hybrid_shard; a mapping is fully fixed only with them)
    full = Mapping(tp=4, pp=2, dp=8, cp=1, ep=1, vpp=1, micro_batch=1, recompute="selective",
                   zero=1, sequence_parallel=True, ep_overlap=False, hybrid_shard=False,
                   offload="none")
    res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, full)
    assert res.n_candidates == 1
    assert res.feasible and res.mapping == full
    # the new fields are honoured too: a dense model has no all-to-all to overlap, and hybrid
    # sharding only splits a ZeRO-3 group that spans scale-up domains (tp4 x dp8 > 8)
    for bad in (replace(full, ep_overlap=True), replace(full, hybrid_shard=True)):
        res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, bad)
        assert res.n_candidates == 1 and not res.feasible, bad
        assert res.reason.startswith(pack.STATUS_REASONS[layout.S_INVALID])
    hybrid = replace(full, zero=3, hybrid_shard=True)
    res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, hybrid)
    assert res.n_candidates == 1 and res.feasible and res.mapping == hybrid


def test_impossible_fixed_mapping_is_infeasible_with_reason():
    res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, Mapping(tp=3))  # 32 heads
    assert not res.feasible
    assert res.reason.startswith(pack.STATUS_REASONS[layout.S_INVALID])
    assert res.step_time_s == res.tokens_per_s == res.mfu == 0.0
    assert res.n_feasible == 0 and res.n_candidates > 0


def test_negative_fixed_degree_is_rejected():
    try:
        res = evaluate(H100, ClusterSpec(n_chips=64), LLAMA8B, Mapping(tp=-2))
    except ValueError as err:
        assert "tp" in str(err)
    else:
        assert not res.feasible


def test_model_that_does_not_fit_reports_out_of_memory():
    job = TrainJob(get_model("mtnlg-530b"), seq_len=2048, global_batch=64)
    res = evaluate(H100, ClusterSpec(n_chips=8), job)
    assert not res.feasible
    assert res.reason.startswith(pack.STATUS_REASONS[layout.S_OOM])
    assert f"({res.n_candidates} candidates tried)" in res.reason


def test_unknown_chip_numbers_raise():
    with pytest.raises(pack.UnknownSpecError, match="h100-sxm-96gb-500w"):
        evaluate(get_chip("h100-sxm-96gb-500w"), ClusterSpec(n_chips=8), LLAMA8B)
    # a NIC given for the cluster makes an otherwise complete chip usable
    res = evaluate(get_chip("mi300x"), ClusterSpec(n_chips=8), LLAMA8B, scaleout_gbps=400.0)
    assert res.feasible


NUMERIC_METRICS = (
    "tokens_per_s", "tokens_per_s_per_chip", "tokens_per_joule", "mfu", "step_time_s",
    "die_area_mm2", "tdp_w", "chip_cost_usd", "chip_power_w", "cluster_power_w",
    "cost_per_mtoken_usd", "memory_gb_per_chip", "hbm_gb", "peak_tflops_bf16",
)


def test_evaluate_designs_bigger_compute_is_not_slower():
    job = TrainJob(get_model("llama3-8b"), seq_len=4096, global_batch=512)
    big = dict(DEFAULT_DESIGN, compute_units=2 * DEFAULT_DESIGN["compute_units"])
    base_m, big_m = evaluate_designs([DEFAULT_DESIGN, big], job)
    for m in (base_m, big_m):
        assert m["feasible"] is True and m["reason"] == ""
        for key in NUMERIC_METRICS:
            assert math.isfinite(m[key]) and m[key] > 0, key
        assert m["map_tp"] * m["map_pp"] * m["map_dp"] * m["map_cp"] <= DEFAULT_DESIGN["n_chips"]
    assert big_m["peak_tflops_bf16"] == pytest.approx(2 * base_m["peak_tflops_bf16"])
    assert big_m["step_time_s"] <= base_m["step_time_s"]
    assert big_m["tokens_per_s"] >= base_m["tokens_per_s"]
    assert big_m["die_area_mm2"] > base_m["die_area_mm2"]
    assert big_m["tdp_w"] > base_m["tdp_w"]
    # the population call gives what one-at-a-time evaluation gives
    one = evaluate(design_to_chip(DEFAULT_DESIGN), design_to_cluster(DEFAULT_DESIGN), job)
    assert one.step_time_s == base_m["step_time_s"]
    assert one.mapping.as_dict() == {k[4:]: v for k, v in base_m.items() if k.startswith("map_")}


def test_evaluate_designs_empty():
    assert evaluate_designs([], LLAMA8B) == []


def test_tiny_hbm_design_is_out_of_memory():
    """16 GB of HBM and 256 GB of host memory per chip: Llama-3 70B's 1.3 TB of model states
    fit neither on one chip nor, offloaded, in its host; on 8 chips they fit only offloaded."""
    design = dict(DEFAULT_DESIGN, hbm_stacks=1, hbm_gen="HBM2e", n_chips=1)
    job = TrainJob(get_model("llama3-70b"), seq_len=4096, global_batch=64)
    eight = evaluate(design_to_chip(design), design_to_cluster(dict(design, n_chips=8)), job)
    assert eight.feasible and eight.mapping.offload != "none"
    (m,) = evaluate_designs([design], job)
    assert m["hbm_gb"] == 16.0
    assert m["feasible"] is False
    assert "out of memory" in m["reason"]
    assert m["tokens_per_s"] == 0.0 and m["cost_per_mtoken_usd"] == 0.0
    res = evaluate(design_to_chip(design), design_to_cluster(design), job)
    assert not res.feasible and "out of memory" in res.reason


def test_default_design_is_h100_like():
    chip = design_to_chip(DEFAULT_DESIGN)
    # 132 units x 2048 MAC/cycle x 2 FLOP x 1.83 GHz: the H100 SXM dense bf16 peak
    assert chip.tflops_bf16 == pytest.approx(989.4, rel=1e-3)
    assert chip.tflops_fp8 == pytest.approx(2 * chip.tflops_bf16)
    assert chip.hbm_gb == 80 and chip.hbm_tbps == pytest.approx(4.095)
    assert chip.scaleup_gbps == 900 and chip.scaleup_domain == 8
    # Area and TDP constants in codesign.model.chip.cost / codesign.model.chip.power were FITTED to
    # H100 (and A100),
    # so this is a consistency check of the fit, not an independent validation.
    assert H100.die_area_mm2 == 814 and H100.tdp_w == 700
    assert chip.die_area_mm2 == pytest.approx(814, rel=0.10)
    assert chip.tdp_w == pytest.approx(700, rel=0.10)
    assert chip.price_usd is not None and chip.price_usd > 0
    cluster = design_to_cluster(DEFAULT_DESIGN, {"pue": 1.3})
    assert cluster.n_chips == 1024 and cluster.pue == 1.3
