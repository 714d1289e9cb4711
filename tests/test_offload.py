"""Host memory as a second tier (codesign.model.kernels.offload): what each offload keeps
where, the time its copies and the host's Adam step add, the host's capacity, and the
mapping search using it where it is faster than a larger model-parallel degree."""

from __future__ import annotations

import json

import kernel_helpers as kh
import numpy as np
import pytest

from codesign.cli import main
from codesign.model.catalog import get_chip, get_model
from codesign.model.catalog.assume import fill_unknowns
from codesign.model.cluster.build import as_built
from codesign.model.kernels import layout as L
from codesign.model.kernels.memory import WEIGHT_B
from codesign.model.kernels.offload import RESIDENT_LAYERS
from codesign.model.kernels.train import ADAM_BYTES_PER_PARAM, eval_mapping
from codesign.model.kernels.train_search import eval_offloaded
from codesign.model.perf import evaluate
from codesign.model.specs import ClusterSpec, Mapping, TrainJob

case, chip_arr, mapping = kh.case, kh.chip_arr, kh.mapping


def _run(arrays, mp):
    return kh.eval_both(eval_mapping, arrays, mp, out_len=L.OUT_LEN)


def _roomy(**cols):
    return chip_arr("h100-sxm", C_HBM_B=1e15, C_TDP_W=np.inf, **cols)


def test_eval_offloaded_matches_its_py_func_and_tries_offload_only_when_out_of_memory():
    rng = np.random.default_rng(5)
    tried = set()
    for _ in range(60):
        arrays, mp = kh.random_case(rng)
        arrays[0][L.C_HBM_B] *= float(rng.choice([0.05, 0.3, 1.0]))
        fixed_off = int(rng.choice([-1, -1, 0, 1, 2, 3]))
        res = []
        for fn in (eval_offloaded, eval_offloaded.py_func):
            m, out, spare = mp.copy(), np.zeros(L.OUT_LEN), np.zeros(L.OUT_LEN)
            counts = np.zeros(L.N_STATUS, np.int64)
            bound = np.array([np.inf, np.inf, 0.0, np.inf])  # no incumbent, no outside bound
            cache = np.zeros((0, 21))
            st = fn(*arrays, fixed_off, m, out, spare, counts, bound, cache, -1, 0.0)
            res.append((st, m, out, counts))
        (st, m, out, counts), (st2, m2, out2, counts2) = res
        assert st == st2
        np.testing.assert_array_equal(m, m2)
        np.testing.assert_allclose(out, out2, rtol=kh.RTOL)
        np.testing.assert_array_equal(counts, counts2)
        m0 = mp.copy()
        m0[L.P_OFFLOAD] = max(fixed_off, 0)
        st0, _ = _run(arrays, m0)
        if fixed_off >= 0 or st0 != L.S_OOM:  # one evaluation, the mapping as given
            assert counts.sum() == 1 and st == st0 and m[L.P_OFFLOAD] == max(fixed_off, 0)
        else:
            assert counts.sum() >= 2
            tried.add(int(m[L.P_OFFLOAD]))
    assert tried & {1, 2, 3}


def test_optimizer_offload_moves_the_optimizer_states_and_runs_adam_on_the_host():
    """ZeRO-Offload: HBM loses exactly the optimizer states, host memory gains them; the
    optimizer step takes max(chip's step, gradients down + weights up over the link, 30 B per
    parameter through host DRAM)."""
    arrays = case(_roomy(), n_chips=8, model="llama3-8b", seq=2048, gbatch=16)
    base = _run(arrays, mapping(tp=8, mb=1, rc=1, zero=0))[1]
    off = _run(arrays, mapping(tp=8, mb=1, rc=1, zero=0, off=1))[1]
    assert off[L.O_MEM_OPT] == 0.0 and off[L.O_MEM_WEIGHTS] == base[L.O_MEM_WEIGHTS]
    assert off[L.O_MEM_B] == pytest.approx(base[L.O_MEM_B] - base[L.O_MEM_OPT], rel=1e-12)
    assert off[L.O_MEM_HOST] == pytest.approx(base[L.O_MEM_OPT], rel=1e-12)
    params = base[L.O_MEM_WEIGHTS] / WEIGHT_B
    cl, job = arrays[1], arrays[3]
    t_host = max((job[L.J_GRAD_B] + WEIGHT_B) * params / cl[L.K_HOST_BPS],
                 ADAM_BYTES_PER_PARAM * params / cl[L.K_HOST_DRAM_BPS])
    assert off[L.O_T_OPT] == pytest.approx(max(base[L.O_T_OPT], t_host), rel=1e-9)
    assert off[L.O_STEP_S] - base[L.O_STEP_S] == pytest.approx(
        off[L.O_T_OPT] - base[L.O_T_OPT], rel=1e-9)
    assert off[L.O_T_HOST] == pytest.approx(off[L.O_T_OPT] - base[L.O_T_OPT], rel=1e-9)
    assert off[L.O_T_HOST] > 0  # host DRAM per chip is slower than HBM


def test_weight_offload_keeps_two_layers_and_exposes_what_compute_does_not_hide():
    """Weights and gradients in host memory, two layers' worth on the chip; with a link so
    slow that no copy hides, each layer pays its copies: forward w, backward w + g, over the
    link, plus every copied byte through HBM once."""
    slow = 1e8  # bytes/s: nothing hides
    arrays = case(_roomy(), n_chips=1, model=kh.TINY, seq=1024, gbatch=2)
    arrays[1][L.K_HOST_BPS] = slow
    base = _run(arrays, mapping(mb=1))[1]
    st, off = _run(arrays, mapping(mb=1, off=2))
    assert st == L.S_OK
    assert off[L.O_MEM_HOST] == pytest.approx(base[L.O_MEM_WEIGHTS] + base[L.O_MEM_GRADS])
    assert off[L.O_MEM_WEIGHTS] < base[L.O_MEM_WEIGHTS]
    layer_p = off[L.O_MEM_WEIGHTS] / (RESIDENT_LAYERS * WEIGHT_B)
    job, chip = arrays[3], arrays[0]
    x = (2 * WEIGHT_B + job[L.J_GRAD_B]) * layer_p  # w in (fwd), w in + g out (bwd)
    n = 2 * kh.TINY.layers  # two micro-batches, every layer
    t_layer_fwd = base[L.O_T_COMPUTE] / n  # forward + backward compute per layer pass
    assert x / slow > t_layer_fwd  # really exposed
    assert off[L.O_T_HOST] > 0.9 * n * x / slow
    hbm = x / (chip[L.C_HBM_BPS] * chip[L.C_MEM_EFF])
    assert off[L.O_STEP_S] > base[L.O_STEP_S] + n * (x / slow - t_layer_fwd) + n * hbm * 0.99
    assert off[L.O_LINK_B] - base[L.O_LINK_B] == pytest.approx(n * x, rel=1e-9)
    # weights offload needs the whole gradients: not with ZeRO-2 or 3
    assert _run(arrays, mapping(mb=1, zero=2, off=2))[0] == L.S_INVALID
    assert _run(arrays, mapping(mb=1, off=4))[0] == L.S_INVALID


def test_host_memory_capacity_bounds_offload():
    arrays = case(_roomy(), n_chips=8, model="llama3-8b", seq=2048, gbatch=16)
    mp = mapping(tp=8, mb=1, rc=1, off=1)
    st, out = _run(arrays, mp)
    assert st == L.S_OK
    arrays[1][L.K_HOST_MEM_B] = out[L.O_MEM_HOST] * 0.99
    assert _run(arrays, mp)[0] == L.S_OOM


def test_offload_never_speeds_up_a_mapping():
    """The search tries offload only where a mapping does not fit: it relies on this."""
    rng = np.random.default_rng(8)
    n = 0
    while n < 60:
        arrays, mp = kh.random_case(rng)
        arrays[0][L.C_HBM_B] = 1e15
        arrays[0][L.C_TDP_W] = np.inf
        mp[L.P_OFFLOAD] = 0
        st, base = _run(arrays, mp)
        if st != L.S_OK:
            continue
        n += 1
        for off in (1, 2, 3):
            mp[L.P_OFFLOAD] = off
            st, out = _run(arrays, mp)
            if st == L.S_OK:
                assert out[L.O_STEP_S] >= base[L.O_STEP_S]
                assert out[L.O_MEM_B] <= base[L.O_MEM_B]


def _built(chip_id: str, n: int):
    return as_built(fill_unknowns(get_chip(chip_id))[0], n)


def test_host_memory_of_the_platforms_as_built():
    """Per accelerator: DGX H100 (PCIe 5.0 x16, 2 TB over 8), GB200 (a Grace's NVLink-C2C
    and 480 GB LPDDR5X shared by its two GPUs), Maia 100 (its own PCIe 5.0 x8 link)."""
    h100 = _built("h100-sxm", 8)[1]
    assert (h100.host_link_gbs, h100.host_memory_gb_per_chip) == (64.0, 256.0)
    assert h100.host_memory_gbs_per_chip == pytest.approx(2 * 307.2 / 8)
    gb200 = _built("gb200", 72)[1]
    assert (gb200.host_link_gbs, gb200.host_memory_gb_per_chip) == (225.0, 240.0)
    maia = _built("maia100", 32)[1]
    assert maia.host_link_gbs == 32.0 and maia.host_memory_gb_per_chip == 192.0


def test_offload_beats_a_larger_model_parallel_degree_on_a_superchip():
    """Llama-3 70B on 8 GB200 (NVLink-C2C to the Grace's memory): the search streams the
    weights from host memory under data parallelism rather than shard them over context
    parallelism and ZeRO-3, and that is faster than the best mapping without offload."""
    chip, cluster = _built("gb200", 8)
    job = TrainJob(get_model("llama3-70b"), seq_len=8192, global_batch=32, precision="bf16")
    best = evaluate(chip, cluster, job)
    kept = evaluate(chip, cluster, job, Mapping(offload="none"))
    assert best.feasible and kept.feasible
    assert best.mapping.offload != "none" and best.host_memory_gb > 0
    assert best.tokens_per_s > kept.tokens_per_s * 1.01
    assert best.mapping.tp * best.mapping.cp * best.mapping.pp < (
        kept.mapping.tp * kept.mapping.cp * kept.mapping.pp)
    assert best.breakdown_s["host_offload_exposed"] >= 0


def test_offload_fits_what_hbm_alone_cannot_and_calculon_mapping_is_expressible():
    """Llama-3 70B on 16 H100: nothing fits in 80 GB without offload. MT-NLG 530B on A100s
    at tp 8 x pp 8 (Calculon's kind of offloading mapping): out of memory kept on the chip,
    feasible with the optimizer states in host memory."""
    chip, cluster = _built("h100-sxm", 16)
    job = TrainJob(get_model("llama3-70b"), seq_len=8192, global_batch=64, precision="bf16")
    assert not evaluate(chip, cluster, job, Mapping(offload="none")).feasible
    res = evaluate(chip, cluster, job)
    assert res.feasible and res.mapping.offload != "none"
    chip, cluster = _built("a100-sxm-80gb", 1024)
    job = TrainJob(get_model("mtnlg-530b"), seq_len=2048, global_batch=1920, precision="bf16")
    fixed = dict(tp=8, pp=8, zero=0, recompute="full")
    assert not evaluate(chip, cluster, job, Mapping(**fixed, offload="none")).feasible
    res = evaluate(chip, cluster, job, Mapping(**fixed, offload="optimizer"))
    assert res.feasible and res.mapping.offload == "optimizer"
    assert res.host_memory_gb > res.memory_gb["weights"]


def test_a_generic_cluster_has_the_default_host_tier():
    c = ClusterSpec(n_chips=8)
    assert (c.host_link_gbs, c.host_memory_gb_per_chip) == (32.0, 256.0)


def test_evaluate_offload_flags(capsys):
    args = ["evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips", "16",
            "--global-batch", "64", "--seq-len", "8192", "--json"]
    assert main([*args, "--offload", "optimizer"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feasible"] and out["mapping"]["offload"] == "optimizer"
    assert out["host_memory_gb"] > 0 and out["platform"]["host_link_gbs"] == 64.0
    assert main([*args, "--offload", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["feasible"] is False
    assert main([*args, "--host-memory-gb", "1"]) == 0  # no room to offload to
    assert json.loads(capsys.readouterr().out)["feasible"] is False
    assert main([*args, "--offload", "disk"]) == 2
    err = capsys.readouterr().err
    assert "--offload" in err and "'disk'" in err and "optimizer+weights" in err
