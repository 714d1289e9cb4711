"""Sensitivity of the best mapping's step time to the hardware (issue requirement).

More HBM bandwidth, more SRAM, more scale-up bandwidth or more compute never make the best
mapping slower (the search picks the best of a candidate set that only gets faster), and each of
them does change the result in a regime where it should: a memory-bound small model, GEMMs that
re-read operands through a tiny SRAM, a tensor-parallel step that waits on its all-reduces, a
compute-bound large model. The same for the scale-out NIC, the network topology and the
attention kernel. Everything goes through :func:`codesign.model.perf.evaluate` (mapping searched
unless a field is fixed) on catalog chips changed with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from codesign.model.catalog import get_chip, get_model
from codesign.model.perf import evaluate
from codesign.model.specs import ChipSpec, ClusterSpec, Mapping, ModelSpec, Result, TrainJob

H100 = get_chip("h100-sxm")
A100 = get_chip("a100-sxm-80gb")
MONO_RTOL = 1e-12
"""Never slower: new <= old * (1 + MONO_RTOL)."""

CASES = {
    "llama3-8b-64xh100": (H100, ClusterSpec(n_chips=64),
                          TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)),
    "llama3-70b-1024xh100": (H100, ClusterSpec(n_chips=1024),
                             TrainJob(get_model("llama3-70b"), seq_len=8192, global_batch=1024)),
    "gpt3-175b-1024xa100": (A100, ClusterSpec(n_chips=1024),
                            TrainJob(get_model("gpt3-175b"), seq_len=2048, global_batch=1536)),
    "mixtral-8x7b-256xh100": (H100, ClusterSpec(n_chips=256),
                              TrainJob(get_model("mixtral-8x7b"), seq_len=4096,
                                       global_batch=1024)),
}
SMALL = ModelSpec("small", layers=12, hidden=1024, heads=16, kv_heads=16, ffn_hidden=4096,
                  vocab=32000, gated_mlp=False)
"""A ~150M-parameter GPT-style model: at micro-batch 1 and 1k tokens its GEMMs are small and the
norms/activations stream through HBM, so HBM bandwidth shows in the step time."""
TFLOPS_FIELDS = ("tflops_fp32", "tflops_bf16", "tflops_fp8", "tflops_fp4")


def scaled(chip: ChipSpec, knob: str, factor: float = 2.0) -> ChipSpec:
    """``chip`` with one knob multiplied; ``tflops`` scales every known peak (0/None stay)."""
    if knob == "tflops":
        return dataclasses.replace(chip, **{f: getattr(chip, f) * factor
                                            for f in TFLOPS_FIELDS if getattr(chip, f)})
    return dataclasses.replace(chip, **{knob: getattr(chip, knob) * factor})


def step(chip: ChipSpec, cluster: ClusterSpec, job: TrainJob, mapping: Mapping | None = None,
         scaleout_gbps: float | None = None) -> float:
    """Best step time (s); the result must be feasible."""
    res = evaluate(chip, cluster, job, mapping, scaleout_gbps=scaleout_gbps)
    assert res.feasible, res.reason
    return res.step_time_s


def faster_by(old: float, new: float) -> float:
    """Relative step-time reduction (0.1 = 10 % faster)."""
    return 1.0 - new / old


@pytest.fixture(scope="module")
def baseline() -> dict[str, Result]:
    out = {}
    for name, (chip, cluster, job) in CASES.items():
        res = evaluate(chip, cluster, job)
        assert res.feasible, (name, res.reason)
        out[name] = res
    return out


# ---- never slower ---------------------------------------------------------------------------
@pytest.mark.parametrize("knob", ["hbm_tbps", "sram_mb", "scaleup_gbps", "tflops", "hbm_gb"])
@pytest.mark.parametrize("name", list(CASES))
def test_doubling_a_hardware_knob_never_slows_the_best_mapping(baseline, name, knob):
    """HBM bandwidth, SRAM, scale-up bandwidth and every peak make each mapping faster or leave
    it alone and change no memory use; HBM capacity only admits more mappings."""
    chip, cluster, job = CASES[name]
    new = step(scaled(chip, knob), cluster, job)
    assert new <= baseline[name].step_time_s * (1 + MONO_RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_doubling_the_nic_never_slows_the_best_mapping(baseline, name):
    chip, cluster, job = CASES[name]
    new = step(chip, cluster, job, scaleout_gbps=2 * chip.scaleout_gbps)
    assert new <= baseline[name].step_time_s * (1 + MONO_RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_topology_never_beats_a_non_blocking_fat_tree(baseline, name):
    """Oversubscription 4 (a 4:1 taper above the leaf), dragonfly (tapered global links) and
    2D/3D tori (a group gets the links of the dimensions it spans) are never faster than a
    non-blocking fat-tree; rail-optimised (one switch tier less) is never slower."""
    chip, cluster, job = CASES[name]
    ref = baseline[name].step_time_s
    tapered = step(chip, dataclasses.replace(cluster, oversubscription=4.0), job)
    assert tapered >= ref * (1 - MONO_RTOL)
    for topo in ("dragonfly", "torus-2d", "torus-3d"):
        assert step(chip, dataclasses.replace(cluster, topology=topo), job) >= ref * (
            1 - MONO_RTOL), topo
    rail = step(chip, dataclasses.replace(cluster, topology="rail-optimized"), job)
    assert rail <= ref * (1 + MONO_RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_unfused_attention_is_never_faster_than_flash(baseline, name):
    chip, cluster, job = CASES[name]
    res = evaluate(chip, cluster, dataclasses.replace(job, attention="unfused"))
    assert not res.feasible or res.step_time_s >= baseline[name].step_time_s * (1 - MONO_RTOL)


# ---- each knob matters in its regime --------------------------------------------------------
def test_hbm_bandwidth_matters_for_a_memory_bound_small_model():
    cluster, job = ClusterSpec(n_chips=8), TrainJob(SMALL, seq_len=1024, global_batch=64)
    mp = Mapping(micro_batch=1)
    old = step(H100, cluster, job, mp)
    new = step(scaled(H100, "hbm_tbps"), cluster, job, mp)
    assert faster_by(old, new) >= 0.05, (old, new)


def test_hbm_bandwidth_dominates_on_a_starved_chip():
    """0.3 TB/s for 989 TFLOP/s (a tenth of H100's bandwidth): doubling it nearly halves the
    step."""
    starved = dataclasses.replace(H100, hbm_tbps=0.3)
    cluster = ClusterSpec(n_chips=8)
    job = TrainJob(get_model("llama3-8b"), seq_len=4096, global_batch=64)
    old = step(starved, cluster, job)
    new = step(scaled(starved, "hbm_tbps"), cluster, job)
    assert faster_by(old, new) >= 0.30, (old, new)


def test_sram_matters_when_tiny_and_saturates_when_large():
    """With 1 MB of SRAM the GEMM tiles are ~290 elements wide, operands are re-read from HBM
    over and over and the GEMMs turn memory-bound; 64 MB makes them compute-bound again. Past
    that point more SRAM cannot help: 512 -> 1024 MB changes nothing."""
    cluster = ClusterSpec(n_chips=8)
    job = TrainJob(get_model("llama3-8b"), seq_len=4096, global_batch=64)
    steps = [step(dataclasses.replace(H100, sram_mb=mb), cluster, job) for mb in (1, 4, 16, 64)]
    assert all(b <= a * (1 + MONO_RTOL) for a, b in itertools.pairwise(steps))
    assert faster_by(steps[0], steps[-1]) >= 0.20, steps
    assert faster_by(steps[0], steps[1]) >= 0.02, steps  # every step of the way at first

    chip, cluster, job = CASES["llama3-70b-1024xh100"]
    big = step(dataclasses.replace(chip, sram_mb=512), cluster, job)
    bigger = step(dataclasses.replace(chip, sram_mb=1024), cluster, job)
    assert bigger == pytest.approx(big, rel=1e-12)


@pytest.mark.parametrize(
    ("n_chips", "job"),
    [
        (64, TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=64)),
        (1024, CASES["llama3-70b-1024xh100"][2]),
    ],
    ids=["llama3-8b-64xh100-gb64", "llama3-70b-1024xh100"],
)
def test_scaleup_bandwidth_matters_with_tensor_parallel_8(n_chips, job):
    """tp = 8 fixed: four (reduce-scatter + all-gather) per layer on the scale-up fabric sit on
    the critical path, so doubling NVLink bandwidth shortens the step."""
    cluster, mp = ClusterSpec(n_chips=n_chips), Mapping(tp=8)
    old = step(H100, cluster, job, mp)
    new = step(scaled(H100, "scaleup_gbps"), cluster, job, mp)
    assert faster_by(old, new) >= 0.05, (old, new)


@pytest.mark.parametrize("name", ["llama3-70b-1024xh100", "gpt3-175b-1024xa100"])
def test_compute_matters_for_large_models(name):
    """Large GEMMs are compute-bound: doubling every peak cuts the step by well over 20 %
    (not 50 %: attention, norms, communication and the optimizer do not scale with it)."""
    chip, cluster, job = CASES[name]
    old = step(chip, cluster, job)
    new = step(scaled(chip, "tflops"), cluster, job)
    assert 0.20 <= faster_by(old, new) < 0.5, (old, new)


@pytest.mark.parametrize(
    ("name", "nics", "min_gain"),
    # gpt3-175b: 0.10 before issue 12, when ZeRO-3 gathers were free to hide and the search
    # ran dp256 ZeRO-3 with nothing exposed at 200 Gb/s (14 % faster than at 100). ZeRO-3 now
    # gathers every layer per micro-batch (and ZeRO-2 hides its reduce-scatter under the last
    # backward), so the search keeps ZeRO-2 and the faster NIC saves 8 %: the same bound as
    # the llama3-70b case, with the mechanism checked below.
    [("llama3-70b-1024xh100", (200, 400), 0.05), ("gpt3-175b-1024xa100", (100, 200), 0.05)],
)
def test_nic_bandwidth_matters_for_data_parallel_across_nodes(name, nics, min_gain):
    """Hundreds of data-parallel replicas across 128 nodes: the gradient reduction (and ZeRO-3
    gathers) cross the scale-out network, and a slow NIC pushes the search to worse layouts.
    The slow NIC's best layout exposes data-parallel communication that the faster one
    shrinks."""
    chip, cluster, job = CASES[name]
    slow = evaluate(chip, cluster, job, scaleout_gbps=nics[0])
    fast = evaluate(chip, cluster, job, scaleout_gbps=nics[1])
    assert slow.feasible and fast.feasible, (slow.reason, fast.reason)
    old, new = slow.step_time_s, fast.step_time_s
    assert faster_by(old, new) >= min_gain, (old, new)
    exposed = {n: r.breakdown_s["dp_comm_exposed"] for n, r in zip(nics, (slow, fast),
                                                                   strict=True)}
    assert exposed[nics[0]] > exposed[nics[1]] >= 0.0 and exposed[nics[0]] > 0.01 * old, exposed


def test_oversubscription_slows_a_multi_node_job():
    chip, cluster, job = CASES["llama3-70b-1024xh100"]
    old = step(chip, cluster, job)
    new = step(chip, dataclasses.replace(cluster, oversubscription=4.0), job)
    assert faster_by(new, old) >= 0.05, (old, new)


def test_torus_gives_the_tensor_parallel_group_less_bandwidth():
    """tp = 8 fixed. With H100's 8-chip domain a 2D torus (~2.8 x 2.8) gives an 8-rank group
    both dimensions: not faster than the switch. With a 64-chip domain (8 x 8) the group spans
    one dimension, half the links: strictly slower."""
    chip, cluster, job = CASES["llama3-70b-1024xh100"]
    mp = Mapping(tp=8)
    torus = dataclasses.replace(cluster, topology="torus-2d")
    switched = step(chip, cluster, job, mp)
    assert step(chip, torus, job, mp) >= switched * (1 - MONO_RTOL)
    wide = dataclasses.replace(chip, scaleup_domain=64)
    switched = step(wide, cluster, job, mp)
    assert faster_by(step(wide, torus, job, mp), switched) >= 0.05


def test_unfused_attention_is_slower_and_stores_the_scores():
    """Same fixed mapping with recompute none: unfused attention needs more memory (the
    5 a s^2 b score activations) and more time (the scores stream through HBM)."""
    chip = H100
    cluster = ClusterSpec(n_chips=64)
    job = TrainJob(get_model("llama3-8b"), seq_len=2048, global_batch=64)
    mp = Mapping(tp=8, pp=1, dp=8, cp=1, ep=1, vpp=1, micro_batch=1, recompute="none", zero=1,
                 sequence_parallel=True, ep_overlap=False, hybrid_shard=False,
                 offload="none")  # all fixed
    flash = evaluate(chip, cluster, job, mp)
    unfused = evaluate(chip, cluster, dataclasses.replace(job, attention="unfused"), mp)
    assert flash.feasible and unfused.feasible
    assert unfused.mapping == flash.mapping == mp
    assert unfused.memory_gb_per_chip > flash.memory_gb_per_chip * 1.1
    assert unfused.step_time_s > flash.step_time_s * 1.05


@pytest.mark.parametrize("attention", ["flash", "unfused"])
def test_attention_work_per_chip_does_not_depend_on_the_dp_cp_split(attention):
    """tp 8 and dp x cp = 8 fixed: each chip computes the same (query, key) pairs per step
    whether the batch is split over dp (whole sequences) or cp (sequence chunks, each rank
    scoring its chunk's queries against every key), so the attention core takes the same
    time per step (before this commit unfused attention was divided by cp twice)."""
    job = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=64, attention=attention)
    t = {}
    for dp, cp in ((8, 1), (4, 2), (2, 4)):
        mp = Mapping(tp=8, pp=1, dp=dp, cp=cp, ep=1, vpp=1, micro_batch=1, recompute="none",
                     zero=1, sequence_parallel=True, ep_overlap=False, hybrid_shard=False,
                     offload="none")
        res = evaluate(H100, ClusterSpec(n_chips=64), job, mp)
        assert res.feasible and res.mapping == mp, res.reason
        t[cp] = res.breakdown_s["attention_compute"]
    assert t[1] > 0 and t[2] == pytest.approx(t[1], rel=1e-9) \
        and t[4] == pytest.approx(t[1], rel=1e-9), t


def test_unfused_attention_is_much_slower_with_the_mapping_searched():
    """On the llama3-8b 64-chip case (8k tokens) the scores stream through HBM: much slower."""
    chip, cluster, job = CASES["llama3-8b-64xh100"]
    old = step(chip, cluster, job)
    new = step(chip, cluster, dataclasses.replace(job, attention="unfused"))
    assert new >= 1.5 * old
