"""Mixture-of-experts in the training and serving models.

* Work follows the ACTIVE parameters (top-k routed + shared experts), not the total: the
  training lower bound ``_gemm_flops_per_token`` and the serving prefill FLOPs; batch-1 decode
  reads about the active weights from HBM, a large batch touches every expert.
* Training a MoE costs about what a dense model with its active parameters costs, far less
  than a dense model with its total parameters; expert parallelism is used when the experts
  do not fit otherwise.
* Expert-parallel all-to-all gets more expensive when the ep group leaves the scale-up domain
  (training and serving).
* Every weight of a serving replica must live on one of its chips (bug: ep spanning pipeline
  stages drops experts from the memory count).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from codesign.model import pack, perf
from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import projection_params
from codesign.model.kernels.infer import MAX_PP, forward_time, infer_eval, memory_per_chip
from codesign.model.kernels.layer import gemm_flops_per_token as _gemm_flops_per_token
from codesign.model.kernels.moe import COMM_SM_SHARE
from codesign.model.specs import ClusterSpec, InferJob, Mapping, ModelSpec, TrainJob

H100 = get_chip("h100-sxm")
MOE_MODELS = ("mixtral-8x7b", "deepseek-v3")
MIXTRAL = get_model("mixtral-8x7b")


def dense_twin(m: ModelSpec, experts_per_token: int, name: str) -> ModelSpec:
    """A dense model with the MoE's attention and an MLP as wide as ``experts_per_token``
    experts (all MoE layers; Mixtral has no shared experts nor dense layers)."""
    assert m.moe_shared_experts == 0 and m.moe_dense_layers == 0
    return dataclasses.replace(m, name=name, ffn_hidden=experts_per_token * m.moe_ffn_hidden,
                               moe_experts=0, moe_topk=0, moe_ffn_hidden=0)


def mha_twin(m: ModelSpec) -> ModelSpec:
    """The model with standard multi-head attention instead of MLA: ``heads`` KV heads of
    width ``hidden / heads`` (56 for DeepSeek-V3), no query or key/value bottleneck, no
    decoupled RoPE. Every MLA field must go: ``kv_latent_dim=0`` alone is the old spelling of
    MLA and is refilled from ``kv_lora_rank + rope_head_dim`` (ModelSpec.__post_init__)."""
    width = m.hidden // m.heads
    return dataclasses.replace(m, kv_latent_dim=0, kv_lora_rank=0, q_lora_rank=0,
                               rope_head_dim=0, head_dim=width, v_head_dim=width)


def infer_arrays(model: ModelSpec, n_chips: int = 8, chip=H100, isl=2048, osl=256,
                 precision="bf16"):
    return (
        pack.chip_array(chip, scaleout_gbps=400.0),
        pack.cluster_array(ClusterSpec(n_chips=n_chips)),
        pack.model_array(model),
        pack.infer_job_array(InferJob(model, isl, osl, precision=precision)),
    )


# ---- FLOPs and bytes follow the active parameters -------------------------------------------
@pytest.mark.parametrize("name", MOE_MODELS)
def test_training_flops_per_token_follow_active_params(name):
    m = get_model(name)
    flops = _gemm_flops_per_token(pack.model_array(m))
    # two FLOPs per active weight a GEMM touches; the input embedding is a lookup
    assert flops == pytest.approx(2.0 * (m.params_active() - m.vocab * m.hidden), rel=1e-12)
    assert flops < 0.3 * 2.0 * m.params_total()  # far below the total


def _prefill(m: ModelSpec, tp: int, ep: int, t: float) -> tuple[float, dict[str, float]]:
    """forward_time's FLOPs on one chip for one ``t``-token prompt, and the parts of the
    model's work: ``attn`` the attention core (causal: t (t + 1) / 2 key pairs per head, 2
    (d_qk + d_v) FLOPs each, MLA's RoPE part in d_qk), ``whole`` the MLA down-projections
    every tp rank computes whole (Megatron-Core's MLA under tp, attention.projection_params;
    0 without MLA), ``router`` the router GEMMs (hidden x experts per MoE layer), which every
    tp rank runs on all the prompt's tokens (forward_time times them so)."""
    chip, cluster, model, job = infer_arrays(m)
    out2 = np.zeros(5)
    forward_time(chip, cluster, model, job, tp, 1, ep, t, 1.0, t, True, out2)
    _, whole = projection_params(model)
    parts = {
        "attn": m.layers * 2.0 * m.heads * (m.qk_head_dim + m.v_head_dim) * t * (t + 1) / 2,
        "whole": 2.0 * t * m.layers * whole,
        "router": 2.0 * t * (m.layers - m.moe_dense_layers) * m.hidden * m.moe_experts,
    }
    return float(out2[1]), parts


@pytest.mark.parametrize("name", MOE_MODELS)
@pytest.mark.parametrize(("tp", "ep"), [(1, 1), (8, 8)], ids=["one-chip", "tp8-ep8"])
def test_prefill_flops_follow_active_params(name, tp, ep):
    """forward_time's FLOPs of a T-token prefill, x tp for the replica, less the work each of
    the tp ranks repeats (MLA's down-projections: since issue 12 DeepSeek-V3 is the real MLA
    architecture, whose latent down-projections Megatron-Core keeps whole on every rank):
    2 T (active - input embedding) + causal attention, within 5 %, and far below the total."""
    m = get_model(name)
    t = 2048.0
    chip_flops, parts = _prefill(m, tp, ep, t)
    model_flops = chip_flops * tp - (tp - 1) * parts["whole"]
    emb = m.vocab * m.hidden
    assert model_flops == pytest.approx(2.0 * t * (m.params_active() - emb) + parts["attn"],
                                        rel=0.05)
    assert model_flops < 0.3 * 2.0 * t * m.params_total()
    assert (parts["whole"] > 0) == m.is_mla


@pytest.mark.parametrize("name", MOE_MODELS)
@pytest.mark.parametrize(("tp", "ep"), [(1, 1), (8, 8)], ids=["one-chip", "tp8-ep8"])
def test_prefill_flops_are_exact(name, tp, ep):
    """Exactly, per chip: every token goes through every layer's GEMMs (split over tp, except
    the work every rank does whole: MLA's down-projections and the router) and only the last
    one through the output layer; the attention core is split over tp by heads. (The router's
    2 T h experts FLOPs were missing before this commit.)"""
    m = get_model(name)
    t = 2048.0
    chip_flops, parts = _prefill(m, tp, ep, t)
    emb = m.vocab * m.hidden
    repeated = parts["whole"] + parts["router"]
    split = 2.0 * t * (m.params_active() - 2 * emb) - repeated + 2.0 * emb + parts["attn"]
    assert chip_flops == pytest.approx(split / tp + repeated, rel=1e-9)


@pytest.mark.parametrize("name", MOE_MODELS)
def test_decode_reads_the_experts_the_batch_touches(name):
    """Batch 1 reads about the active weights (within 10 %: top-k experts drawn with
    replacement), a batch of 1024 tokens touches nearly every expert."""
    m = get_model(name)
    chip, cluster, model, job = infer_arrays(m)
    w_b = job[L.I_W_BYTES]
    out2 = np.zeros(5)
    forward_time(chip, cluster, model, job, 1, 1, 1, 1.0, 1.0, 1.0, False, out2)
    assert out2[2] == pytest.approx(w_b * m.params_active(), rel=0.10)
    assert out2[2] < 0.3 * w_b * m.params_total()
    forward_time(chip, cluster, model, job, 1, 1, 1, 1024.0, 1024.0, 1.0, False, out2)
    emb_in = m.vocab * m.hidden  # never read by the GEMMs
    assert out2[2] == pytest.approx(w_b * (m.params_total() - emb_in), rel=0.02)


# ---- training: a MoE costs its active, not its total parameters -------------------------------
@pytest.fixture(scope="module")
def mixtral_train():
    job = lambda m: TrainJob(m, seq_len=4096, global_batch=512)  # noqa: E731
    cl = ClusterSpec(n_chips=64)
    return {
        "moe": perf.evaluate(H100, cl, job(MIXTRAL)),
        "dense-active": perf.evaluate(H100, cl, job(dense_twin(MIXTRAL, 2, "dense-active"))),
        "dense-total": perf.evaluate(H100, cl, job(dense_twin(MIXTRAL, 8, "dense-total"))),
        "ep1": perf.evaluate(H100, cl, job(MIXTRAL), Mapping(tp=1, pp=1, ep=1, zero=1)),
        "ep-free": perf.evaluate(H100, cl, job(MIXTRAL), Mapping(tp=1, pp=1, zero=1)),
    }


def test_dense_twins_have_the_moe_parameter_counts():
    """Up to the router: since issue 12 a MoE's parameter counts include its router weights
    (hidden x experts per MoE layer), which a dense twin has no use for."""
    router = MIXTRAL.layers * MIXTRAL.hidden * MIXTRAL.moe_experts
    assert dense_twin(MIXTRAL, 2, "a").params_active() + router == MIXTRAL.params_active()
    assert dense_twin(MIXTRAL, 8, "t").params_total() + router == MIXTRAL.params_total()


def test_training_mixtral_is_feasible_and_uses_expert_parallelism(mixtral_train):
    res = mixtral_train["moe"]
    assert res.feasible, res.reason
    assert 0 < res.mfu < 1
    # without sharding the weights (tp = pp = 1, ZeRO-1) the 47B experts only fit split by ep
    assert not mixtral_train["ep1"].feasible
    assert "out of memory" in mixtral_train["ep1"].reason
    ep_free = mixtral_train["ep-free"]
    assert ep_free.feasible and ep_free.mapping.ep > 1, ep_free.mapping


def test_training_moe_costs_its_active_parameters(mixtral_train):
    moe = mixtral_train["moe"].step_time_s
    active = mixtral_train["dense-active"].step_time_s
    total = mixtral_train["dense-total"].step_time_s
    msg = f"step s: moe {moe:.2f}, dense-active {active:.2f}, dense-total {total:.2f}"
    assert 0.5 < moe / active < 2.0, msg
    assert total > 2.0 * moe, msg


# ---- expert-parallel all-to-all and the scale-up domain ---------------------------------------
@pytest.mark.parametrize("overlap", [False, True], ids=["exposed", "overlapped"])
def test_training_ep_all_to_all_is_slower_across_domains(overlap):
    """Fully fixed mapping, ``ep_overlap`` included (a searched mapping field since issue 12):
    the all-to-all on the critical path, or run under another micro-batch's compute, where
    what shows is the share of the units its kernels take (moe.COMM_SM_SHARE)."""
    job = TrainJob(MIXTRAL, seq_len=4096, global_batch=512)
    fixed = Mapping(tp=1, pp=1, dp=64, cp=1, ep=8, vpp=1, micro_batch=1, recompute="full",
                    zero=1, sequence_parallel=False, ep_overlap=overlap, hybrid_shard=False,
                    offload="none")
    res = {}
    for domain in (8, 4):
        chip = dataclasses.replace(H100, scaleup_domain=domain)
        res[domain] = perf.evaluate(chip, ClusterSpec(n_chips=64), job, fixed)
        assert res[domain].feasible and res[domain].mapping == fixed
    assert res[4].step_time_s > res[8].step_time_s
    # tp = cp = 1: the tp/cp/ep communication is the all-to-all alone
    a2a = {d: r.breakdown_s["tp_cp_ep_comm"] for d, r in res.items()}
    assert a2a[4] > 2 * a2a[8] > 0, a2a
    assert all(r.breakdown_s["ep_all_to_all_exposed"] == a2a[d] for d, r in res.items())
    assert res[4].breakdown_s["compute"] == pytest.approx(res[8].breakdown_s["compute"])
    if overlap:  # hidden under compute: only the units the all-to-all kernels occupy show
        exposed = perf.evaluate(H100, ClusterSpec(n_chips=64), job,
                                dataclasses.replace(fixed, ep_overlap=False))
        assert a2a[8] < exposed.breakdown_s["tp_cp_ep_comm"]
        assert a2a[8] == pytest.approx(COMM_SM_SHARE * exposed.breakdown_s["tp_cp_ep_comm"],
                                       rel=1e-9)


def test_serving_ep_all_to_all_is_slower_across_domains():
    job = InferJob(MIXTRAL, 1024, 256, concurrency=1)
    itl = {}
    for domain in (8, 4):
        chip = dataclasses.replace(H100, scaleup_domain=domain)
        r = perf.evaluate(chip, ClusterSpec(n_chips=8), job, Mapping(tp=8, ep=8))
        assert r.feasible and (r.mapping.tp, r.mapping.ep) == (8, 8)
        itl[domain] = r.itl_s
    assert itl[4] > itl[8], itl


# ---- every weight of a serving replica lives somewhere ----------------------------------------
def _pow2(hi):
    return [v for v in (2**i for i in range(20)) if v <= hi]


# Fixed bug guarded here: ep used to range up to tp*pp while each chip keeps only its stage's
# layers, so a replica held only tp/ep of the routed experts. Experts now stay in the tp group.


@pytest.mark.parametrize("name", MOE_MODELS)
def test_serving_replica_holds_every_weight(name):
    m = get_model(name)
    chip, cluster, model, job = infer_arrays(m, n_chips=64)
    chip[L.C_HBM_B] = 1e13  # everything fits: only the weight count matters
    chip[L.C_DOMAIN] = 64
    out = np.zeros(L.IOUT_LEN)
    short = []
    for tp in _pow2(8):
        for pp in _pow2(min(MAX_PP, 8)):
            for ep in _pow2(m.moe_experts):
                mp = np.array([tp, pp, 1, 1, ep, 1, 1, 0, 0, 0], np.int64)
                if infer_eval(chip, cluster, model, job, mp, out) != L.S_OK:
                    continue
                w, _kv = memory_per_chip(model, job, tp, pp, ep)
                stored = w * tp * pp / job[L.I_W_BYTES]  # weights on the replica's chips
                if stored < m.params_total() * (1 - 1e-9):
                    short.append((tp, pp, ep, round(stored / m.params_total(), 3)))
    assert not short, f"(tp, pp, ep, share of the weights stored): {short}"


def test_deepseek_v3_bf16_does_not_fit_eight_h100():
    """671B weights in bf16 are 1.34 TB; 8 H100 hold 640 GB. The search reports feasible
    (tp=2 pp=4 ep=8, 72 GB per chip)."""
    m = get_model("deepseek-v3")
    assert 2 * m.params_total() > 8 * H100.hbm_gb * 1e9
    res = perf.evaluate(H100, ClusterSpec(n_chips=8), InferJob(m, 1024, 256))
    assert not res.feasible, (res.mapping, res.memory_gb_per_chip)


# ---- all-MoE models (no dense FFN at all) ---------------------------------------------------
# Qwen3-235B-A22B (the ML.ENERGY rows of calibration.csv): every layer is MoE, ffn_hidden = 0.
# Bug guarded: the empty dense-FFN GEMM divided 0 by 0 inside gemm_cost and the jitted kernel
# raised ZeroDivisionError instead of returning a result.
QWEN3_MOE = ModelSpec("qwen3-235b-a22b", layers=94, hidden=4096, heads=64, kv_heads=4,
                      ffn_hidden=0, vocab=151936, gated_mlp=True, moe_experts=128, moe_topk=8,
                      moe_ffn_hidden=1536)


def test_all_moe_model_serves_and_trains_with_finite_results():
    res = perf.evaluate(H100, ClusterSpec(n_chips=8),
                        InferJob(QWEN3_MOE, 128, 512, 64, "fp8"), Mapping(tp=8, pp=1, ep=8),
                        scaleout_gbps=400.0)
    assert res.feasible, res.reason
    assert np.isfinite([res.tokens_per_s, res.itl_s, res.ttft_s, res.chip_power_w]).all()
    assert res.tokens_per_s > 0
    train = perf.evaluate(H100, ClusterSpec(n_chips=512), TrainJob(QWEN3_MOE, 4096, 512),
                          scaleout_gbps=400.0)
    assert train.feasible, train.reason
    assert np.isfinite([train.step_time_s, train.chip_power_w]).all()


def test_all_moe_decode_kernel_matches_py_func():
    chip, cluster, model, job = infer_arrays(QWEN3_MOE, precision="fp8")
    mp = np.array([8, 1, 1, 1, 8, 1, 64, 0, 0, 0], np.int64)  # tp 8, ep 8, batch 64
    outs = []
    for fn in (infer_eval, infer_eval.py_func):
        out = np.zeros(L.IOUT_LEN)
        assert fn(chip, cluster, model, job, mp, out) == L.S_OK
        outs.append(out)
    assert outs[0][L.IO_TPS] > 0
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12)


# ---- multi-head latent attention (DeepSeek-V3) ------------------------------------------------
def test_mla_caches_the_latent_on_every_tp_rank():
    """DeepSeek-V3 caches one 576-wide latent per token and layer (kv_lora_rank 512 + rope 64),
    the same on every tp rank; its MHA twin (head_dim = 7168 / 128 = 56) caches
    2 x 128 heads x 56 per token and layer, split by tp."""
    ds = get_model("deepseek-v3")
    assert ds.kv_latent_dim == 576 and (ds.kv_lora_rank, ds.rope_head_dim) == (512, 64)
    mha = mha_twin(ds)
    assert not mha.is_mla and (mha.kv_heads, mha.head_dim, mha.v_head_dim) == (128, 56, 56)
    job = pack.infer_job_array(InferJob(ds, 1000, 24, precision="fp8", kv_precision="bf16"))
    for tp, pp in ((1, 1), (8, 1), (8, 2)):
        _, kv = memory_per_chip(pack.model_array(ds), job, tp, pp, 1)
        assert kv == pytest.approx(-(-61 // pp) * 576 * 2.0 * 1024)
        _, kv_mha = memory_per_chip(pack.model_array(mha), job, tp, pp, 1)
        assert kv_mha == pytest.approx(-(-61 // pp) * 2 * (128 // tp) * 56 * 2.0 * 1024)
        assert kv_mha / kv == pytest.approx(2 * (128 // tp) * 56 / 576)  # 24.9x at tp 1


def test_mla_serves_far_larger_batches_than_its_mha_twin():
    """On 8 H200 in fp8 (tp 8, ep 8), the latent cache (576 per token and layer on every rank,
    against 2 x 16 heads x 56 for the MHA twin) fits about 3x the sequences, so DeepSeek-V3
    serves more tokens/s than its MHA twin; a batch the twin cannot hold still fits."""
    ds = get_model("deepseek-v3")
    mha = mha_twin(ds)
    h200 = get_chip("h200")

    def serve(model, batch=0):
        return perf.evaluate(h200, ClusterSpec(n_chips=8),
                             InferJob(model, 2000, 500, precision="fp8"),
                             Mapping(tp=8, ep=8, micro_batch=batch), scaleout_gbps=400.0)

    mla_best, mha_best = serve(ds), serve(mha)
    assert mla_best.feasible and mha_best.feasible, (mla_best.reason, mha_best.reason)
    assert mla_best.tokens_per_s > 1.2 * mha_best.tokens_per_s
    big = 3 * mha_best.mapping.micro_batch
    assert serve(ds, big).feasible
    assert "out of memory" in serve(mha, big).reason
