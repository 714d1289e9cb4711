"""Jitted-vs-``py_func`` harness shared by the training and serving kernel tests, and the
training-kernel inputs the kernel test modules share (small models, packed catalog chips,
mapping arrays, random realistic cases).

``out_len`` is the kernel's output length (``layout.OUT_LEN`` for training,
``layout.IOUT_LEN`` for serving); the test modules bind it with :func:`functools.partial`.
"""

import numpy as np

from codesign.model import pack
from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout as L
from codesign.model.specs import PRECISIONS, TOPOLOGIES, ClusterSpec, ModelSpec, TrainJob

RTOL = 1e-12  # jitted and pure-Python kernels run the same float operations


def run_eval(fn, arrays, mp, *, out_len: int) -> tuple[int, np.ndarray]:
    """Run an evaluate kernel ``fn(*arrays, mp, out)``; return (status, out)."""
    out = np.full(out_len, -7.0)  # garbage: the kernel must overwrite every slot
    return int(fn(*arrays, mp, out)), out


def eval_both(kernel, arrays, mp, *, out_len: int) -> tuple[int, np.ndarray]:
    """An evaluate kernel jitted and as Python: same status, same outputs."""
    st_j, out_j = run_eval(kernel, arrays, mp, out_len=out_len)
    with np.errstate(all="ignore"):
        st_p, out_p = run_eval(kernel.py_func, arrays, mp, out_len=out_len)
    assert st_j == st_p, (mp.tolist(), st_j, st_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, out_j


def run_search(fn, arrays, fixed=None, *, out_len: int):
    """Run a mapping-search kernel; return (status, best mapping, best outputs, counts)."""
    fixed = np.full(L.MAP_LEN, -1, np.int64) if fixed is None else fixed
    best_mp = np.zeros(L.MAP_LEN, np.int64)
    best_out = np.zeros(out_len)
    counts = np.zeros(L.N_STATUS, np.int64)
    status = int(fn(*arrays, fixed, best_mp, best_out, counts))
    return status, best_mp, best_out, counts


def search_both(kernel, arrays, fixed=None, *, out_len: int):
    """A search kernel jitted and as Python (its py_func calls the jitted evaluator):
    same status, counts (pruning included), mapping and outputs."""
    st_j, mp_j, out_j, cnt_j = run_search(kernel, arrays, fixed, out_len=out_len)
    st_p, mp_p, out_p, cnt_p = run_search(kernel.py_func, arrays, fixed, out_len=out_len)
    assert st_j == st_p
    np.testing.assert_array_equal(cnt_j, cnt_p)
    np.testing.assert_array_equal(mp_j, mp_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, mp_j, out_j, cnt_j


def _assert_same(a, b, what) -> None:
    """Jitted and pure-Python results agree: numbers to RTOL (NaN matches NaN), arrays and
    tuples element by element, booleans and integers exactly."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{what}[{i}]")
        return
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=RTOL, atol=0.0,
                                   equal_nan=True, err_msg=what)
        return
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        assert bool(a) == bool(b), what
        return
    if a is None or b is None:
        assert a is b, what
        return
    np.testing.assert_allclose(float(a), float(b), rtol=RTOL, atol=0.0, equal_nan=True,
                               err_msg=what)


def call_both(kernel, *args):
    """Run a scalar kernel jitted and as its ``py_func`` on copies of ``args``: the same
    result (or the same exception type) and the same contents of every array argument
    afterwards (kernels that fill ``res``/``out`` arrays). Returns (result, args after the
    jitted call)."""
    args_j = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    args_p = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    err_j = err_p = None
    res_j = res_p = None
    try:
        res_j = kernel(*args_j)
    except (ZeroDivisionError, ValueError, OverflowError) as e:
        err_j = type(e)
    try:
        with np.errstate(all="ignore"):
            res_p = kernel.py_func(*args_p)
    except (ZeroDivisionError, ValueError, OverflowError) as e:
        err_p = type(e)
    name = getattr(kernel, "__name__", str(kernel))
    assert err_j == err_p, (name, args, err_j, err_p)
    if err_j is None:
        _assert_same(res_j, res_p, f"{name}{args!r}")
        for i, (x, y) in enumerate(zip(args_j, args_p, strict=True)):
            if isinstance(x, np.ndarray):
                _assert_same(x, y, f"{name} argument {i} after the call")
    return res_j, args_j


# ---- training-kernel inputs ---------------------------------------------------------------
# catalog chips that pack once the (cluster-specific) NIC bandwidth is given
PACKABLE_CHIPS = (
    "a100-sxm-80gb", "a100-sxm-40gb", "h100-sxm", "h200", "mi250x", "mi300x", "tpu-v4",
    "gaudi3", "maia100",
)
MODELS = ("llama3-8b", "llama3-70b", "mixtral-8x7b", "gpt3-175b", "deepseek-v3")
TINY = ModelSpec("tiny", layers=6, hidden=512, heads=8, kv_heads=4, ffn_hidden=1408, vocab=1000)
"""A ~25M-parameter model: fits on one chip, so small clusters have many feasible mappings."""
TINY_MOE = ModelSpec("tiny-moe", layers=4, hidden=512, heads=8, kv_heads=8, ffn_hidden=1408,
                     vocab=1000, moe_experts=4, moe_topk=2, moe_ffn_hidden=512,
                     moe_shared_experts=1, moe_dense_layers=1)
"""A small MoE (4 experts, one shared, one leading dense layer): expert parallelism is searched."""
EFF_COLS = (L.C_GEMM_EFF, L.C_GEMM_EFF_LOWP, L.C_ATTN_EFF, L.C_MEM_EFF, L.C_NET_EFF)


def chip_arr(chip_id: str = "h100-sxm", **set_values: float) -> np.ndarray:
    """A packed catalog chip (NIC 400 Gb/s, calibrated efficiencies) with some columns
    overwritten (layout names)."""
    a = pack.chip_array(get_chip(chip_id), scaleout_gbps=400.0)
    for name, value in set_values.items():
        a[getattr(L, name)] = value
    return a


def case(
    chip: np.ndarray | None = None,
    n_chips: int = 8,
    model: ModelSpec | str = "llama3-8b",
    seq: int = 2048,
    gbatch: int = 32,
    precision: str = "bf16",
    attention: str = "flash",
    **cluster_kw: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(chip, cluster, model, job) arrays for the kernels."""
    m = get_model(model) if isinstance(model, str) else model
    job = TrainJob(m, seq_len=seq, global_batch=gbatch, precision=precision, attention=attention)
    return (
        chip_arr() if chip is None else chip,
        pack.cluster_array(ClusterSpec(n_chips=n_chips, **cluster_kw)),
        pack.model_array(m),
        pack.job_array(job),
    )


def mapping(tp=1, pp=1, dp=1, cp=1, ep=1, vpp=1, mb=1, rc=0, zero=0, sp=None, epo=0,
            hsdp=0, off=0) -> np.ndarray:
    """A full mapping array (sequence parallel on whenever tp > 1 unless given)."""
    mp = np.zeros(L.MAP_LEN, np.int64)
    mp[L.P_TP], mp[L.P_PP], mp[L.P_DP], mp[L.P_CP], mp[L.P_EP] = tp, pp, dp, cp, ep
    mp[L.P_VPP], mp[L.P_MB], mp[L.P_RECOMPUTE], mp[L.P_ZERO] = vpp, mb, rc, zero
    mp[L.P_SP] = (1 if tp > 1 else 0) if sp is None else sp
    mp[L.P_EPO], mp[L.P_HSDP], mp[L.P_OFFLOAD] = epo, hsdp, off
    return mp


def random_case(rng):
    """A perturbed catalog chip + random cluster (every topology) + catalog model + job (both
    attention kernels) + mapping (every recompute mode and ZeRO stage, the all-to-all overlap
    and hybrid sharding included), drawn so that a good share of the mappings are valid (the
    product of degrees fits the cluster)."""
    chip = chip_arr(str(rng.choice(PACKABLE_CHIPS)))
    for idx in (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4, L.C_SRAM_B,
                L.C_HBM_B, L.C_HBM_BPS, L.C_UP_BPS, L.C_OUT_BPS, L.C_TDP_W):
        chip[idx] *= rng.lognormal(0.0, 0.3)
    chip[L.C_HBM_B] *= float(rng.choice([1.0, 4.0]))  # some bigger memories: more S_OK
    chip[L.C_DOMAIN] = float(rng.choice([1, 2, 4, 8, 16, 64, 72]))
    if chip[L.C_UP_BPS] == 0:  # zero scale-up bandwidth has its own tests
        chip[L.C_DOMAIN] = 1.0
    for idx in EFF_COLS:  # efficiencies around the calibrated ones, inside (0, 1]
        chip[idx] = min(1.0, chip[idx] * rng.lognormal(0.0, 0.1))
    chip[L.C_KERNEL_S] *= rng.lognormal(0.0, 0.5)
    mname = str(rng.choice(MODELS))
    model = TINY if rng.random() < 0.3 else get_model(mname)
    moe = model.is_moe
    tp = int(rng.choice([1, 1, 2, 4, 8, 3]))
    pp = int(rng.choice([1, 1, 2, 4, 3]))
    dp = int(rng.choice([1, 2, 4, 8, 16, 32]))
    cp = int(rng.choice([1, 1, 1, 2]))
    ep = int(rng.choice([1, 2, 4, 8])) if moe else int(rng.choice([1] * 9 + [2]))
    vpp = int(rng.choice([1, 1, 1, 2]))
    mb = int(rng.choice([1, 2, 4]))
    zero = int(rng.integers(4))
    mp = mapping(tp, pp, dp, cp, ep, vpp, mb, int(rng.integers(4)), zero, int(rng.integers(2)),
                 epo=int(moe and ep > 1 and rng.random() < 0.5),
                 hsdp=int(zero == 3 and rng.random() < 0.3))
    n_chips = tp * pp * dp * cp * int(rng.choice([1, 1, 2, 3]))
    if rng.random() < 0.05:
        n_chips = max(1, n_chips // 2)  # too small for the mapping
    gbatch = dp * mb * int(rng.choice([1, 2, 4, 8, 16]))
    if rng.random() < 0.05:
        gbatch += 1  # dp * micro-batch no longer divides the batch
    precision = str(rng.choice(PRECISIONS, p=[0.1, 0.1, 0.5, 0.2, 0.1]))
    attention = "unfused" if rng.random() < 0.2 else "flash"
    job = TrainJob(model, seq_len=int(rng.choice([1024, 2048, 4096, 8192])),
                   global_batch=gbatch, precision=precision, attention=attention)
    cluster = ClusterSpec(
        n_chips=n_chips,
        topology=str(rng.choice(TOPOLOGIES)),
        oversubscription=float(rng.choice([1.0, 2.0, 4.0])),
        scaleup_latency_us=2.0 * rng.lognormal(0, 0.5),
        scaleout_latency_us=10.0 * rng.lognormal(0, 0.5),
        pue=float(rng.uniform(1.05, 1.5)),
        host_power_w_per_chip=float(rng.uniform(100, 400)),
    )
    arrays = (chip, pack.cluster_array(cluster), pack.model_array(model), pack.job_array(job))
    return arrays, mp
