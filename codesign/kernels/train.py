"""Training step-time kernel: one mapping (:func:`eval_mapping`) and the best mapping
(:func:`search_mappings`, :func:`search_population`).

Power limit (DVFS): a chip whose workload would draw more than its TDP either is infeasible
(``C_THROTTLES = 0``: the designs, whose TDP is their sustained peak) or, like a shipping chip,
lowers its clock until it fits (``C_THROTTLES = 1``, :func:`next_clock`): the mapping is
re-evaluated on :func:`at_clock`'s slower chip, and ``O_CLOCK`` reports the clock it sustains.

Model, per micro-batch and transformer layer, on one chip (efficiencies ``eff_*`` come from the
chip array; :mod:`codesign.efficiency` documents and calibrates them):

* GEMMs: ``max(FLOPs / (peak * eff_gemm * wave util), HBM bytes / (bw * eff_mem))``. Output
  tiles of ``16 * MACs/unit`` elements are spread over the compute units in waves; a shape that
  leaves units idle in its last wave loses that share (tile and wave quantisation), so unit
  count and size matter. HBM bytes come from output-stationary tiling whose A, B and C tiles
  (double-buffered) fit the on-chip SRAM: a smaller SRAM re-reads operands more often.
* Attention core: one fused (flash) causal kernel at the 16-bit rate (fp8 recipes keep
  attention in bf16); its scores are never stored, so activation memory has no ``s^2`` term.
  Unfused attention (``J_ATTN = 1``, Megatron-LM 2021-22) runs QK^T and AV as full (masked,
  not causal-skipped) GEMMs and streams the ``a s^2 b`` scores through HBM: 13 bytes/element
  forward (QK^T write, fused scale-mask-softmax read + write, dropout read + write + mask, AV
  read), twice that backward; it stores Korthikanti's ``5 a s^2 b`` score activations.
* Norms, residuals, activation functions: memory-bound traffic at 16-bit activations.
* Backward = 2x the forward GEMMs (data + weight gradients), 2.5x for fused attention.
* Recompute: full = one more forward per layer, selective = one more attention core.
* Tensor parallel: 2 all-reduces forward + 2 backward per layer (reduce-scatter + all-gather
  with sequence parallelism, same volume), not overlapped. Context parallel: ring exchange of
  K/V overlapped with the attention core. Expert parallel: all-to-all dispatch + combine.
* Pipeline: 1F1B with ``vpp`` interleaved virtual stages: ``(m + (pp - 1) / vpp)`` stage times
  for ``m`` micro-batches; the slowest (last) stage also runs the logits; point-to-point sends.
* Data parallel: gradient all-reduce (ZeRO-1/2: reduce-scatter + all-gather, same volume),
  overlapped with the backward pass of the last micro-batch; ZeRO-3 also all-gathers the
  parameters for every micro-batch, prefetched under compute.
* Adam step: memory-bound over the local optimizer shard.
* Memory: 16 bytes/param mixed-precision Adam (2 weight + 2 grad + 12 fp32 optimizer state,
  Rajbhandari et al. 2020) sharded by ZeRO stage; activations per Korthikanti et al. 2022
  (Eq. 1-2, generalised to GQA and gated MLPs, without the score term thanks to the fused
  attention) for the micro-batches in flight under 1F1B.

Collectives: alpha-beta costs, the faster of ring and (double binary) tree. Groups are placed
Megatron-style, tensor parallel innermost (tp, cp, ep/dp, pp). A group within the scale-up
domain uses the scale-up fabric (switched: the chip's full link bandwidth; 2D/3D torus: the
links of the dimensions it spans); a group that spans domains is hierarchical: inside each
domain, then across the scale-out network (fat-tree with oversubscription, rail-optimised,
dragonfly with tapered global links) in parallel shards.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from codesign.kernels import layout as L

WEIGHT_B, GRAD_B, OPT_B = 2.0, 2.0, 12.0
"""Mixed-precision Adam memory per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1)."""
ADAM_BYTES_PER_PARAM = 30.0
"""Adam step traffic per local parameter: read fp32 master, m, v, grad (16 B), write master,
m, v (12 B) and the 16-bit weight copy (2 B)."""
KERNELS_PER_LAYER = 12.0
"""Kernels per layer forward (norms, QKV, attention, projection, residuals, MLP: Megatron)."""
BUFFER_B = 2.0e9
"""Framework workspace, communication buffers and allocator fragmentation per chip (bytes)."""
TILE_ELEMS_PER_MAC = 16.0
"""Output-tile elements per MAC/cycle of a unit: 128x128 for A100's 1024 MAC/SM, 128x256 for
H100's 2048 (CUTLASS default tile shapes for these GPUs)."""
RAIL_LATENCY_FACTOR = 0.75
"""Rail-optimised networks skip one switch tier for rail-aligned traffic (estimate)."""
DRAGONFLY_GLOBAL_TAPER = 0.5
"""Share of NIC bandwidth a dragonfly's global links sustain for group-crossing collectives
(Kim et al. 2008 balance global links at ~1/2 of injection for uniform traffic)."""
UNFUSED_SCORE_BYTES = 13.0
"""HBM bytes per attention-score element in an unfused forward pass (see module doc)."""
MAX_MICRO_BATCH = 64
MAX_CP = 16
MIN_TOKENS_PER_CP_RANK = 2048
"""Context parallelism is searched only while each rank keeps >= 2k tokens of the sequence."""
CLOCK_FLOOR = 0.3
"""Lowest clock a throttling chip runs at, as a fraction of its peak clock: below it the
workload is infeasible (S_POWER). Estimate: below ~1/3 of its peak clock a datacenter part is
no longer a useful operating point."""
VOLTAGE_INTERCEPT = 0.35
"""Supply voltage vs clock, both as fractions of their values at peak clock:
``v = VOLTAGE_INTERCEPT + (1 - VOLTAGE_INTERCEPT) s``, a line that extrapolates to about the
threshold voltage at zero clock (estimate: ~0.3 V of ~0.9 V in 4-5 nm-class parts). Dynamic
energy per operation ~ v^2, dynamic power ~ s v^2. Checked against the one published pair of
the same silicon at two power limits (chips.csv: Blackwell at 1000 W, 2250 dense bf16 TFLOP/s,
and 1200 W, 2500): clock ratio 0.90 published, 0.905 modelled (0.93 with v proportional to s,
tests/test_power.py)."""
VOLTAGE_FLOOR = 0.65
"""Lowest supply voltage, as a fraction of the voltage at peak clock (estimate: accelerator
V/f tables span roughly 0.6-0.95 V); below the clock where the line reaches it, only the clock
falls."""
CLOCK_BISECTIONS = 12
"""Bisection steps for the throttled clock (resolution 0.7 / 2^12 = 0.02 % of peak)."""


@njit(cache=True)
def gemm_cost(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units, tile_elems):
    """(seconds, HBM bytes) of an (m x k) @ (k x n) GEMM: the time is compute or HBM traffic,
    whichever is longer.

    Compute: ``2mkn / (peak * eff * util)``; ``util`` is the busy share of ``units`` over the
    waves of output tiles ``tm x tile_elems/128`` (1 if ``units`` is 0). The tile height ``tm``
    is the one of 16, 32, 64, 128 that pads ``m`` least (ties: the taller), as GEMM libraries
    pick narrower tiles for skinny products such as decode GEMVs.
    Traffic: output-stationary square tiles of side ``x = sqrt(sram / (6 el_b))`` (A, B, C
    double-buffered); A is re-read ``n/x`` times and B ``m/x`` times.
    """
    flops = 2.0 * m * k * n
    if flops <= 0.0:
        return 0.0, 0.0  # an empty product (e.g. no dense FFN in an all-MoE model)
    util = 1.0
    if units >= 1.0 and tile_elems >= 128.0:
        tm = 128.0
        padded = math.ceil(m / 128.0) * 128.0
        for cand in (64.0, 32.0, 16.0):
            p = math.ceil(m / cand) * cand
            if p < padded:
                padded = p
                tm = cand
        tn = tile_elems / 128.0
        tiles = math.ceil(m / tm) * math.ceil(n / tn)
        waves = math.ceil(tiles / units)
        util = (m * n) / (waves * units * tm * tn)
        if util > 1.0:
            util = 1.0
    t_c = flops / (peak_flops * eff * util)
    x = math.sqrt(sram_b / (6.0 * el_b))
    if x < 1.0:
        x = 1.0
    traffic = el_b * (m * k * max(1.0, n / x) + k * n * max(1.0, m / x) + m * n)
    t_m = traffic / (hbm_bps * mem_eff)
    return max(t_c, t_m), traffic


@njit(cache=True)
def gemm_time(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units, tile_elems):
    """Seconds of :func:`gemm_cost`."""
    return gemm_cost(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units,
                     tile_elems)[0]


@njit(cache=True)
def matmul_peak(chip, prec):
    """(dense peak FLOP/s, sustained fraction) of the chip's matmuls at precision index
    ``prec`` (specs.PRECISIONS: fp32, fp16, bf16, fp8, fp4; fp16 runs at the bf16 rate)."""
    if prec == 0:
        return chip[L.C_FLOPS_FP32], chip[L.C_GEMM_EFF]
    if prec <= 2:
        return chip[L.C_FLOPS_BF16], chip[L.C_GEMM_EFF]
    if prec == 3:
        return chip[L.C_FLOPS_FP8], chip[L.C_GEMM_EFF_LOWP]
    return chip[L.C_FLOPS_FP4], chip[L.C_GEMM_EFF_LOWP]


@njit(cache=True)
def energy_per_flop(chip, prec):
    """Joules per matmul FLOP at precision index ``prec`` (fp16 at the bf16 cost)."""
    if prec == 0:
        return chip[L.C_E_FP32]
    if prec <= 2:
        return chip[L.C_E_BF16]
    if prec == 3:
        return chip[L.C_E_FP8]
    return chip[L.C_E_FP4]


@njit(cache=True)
def platform_ok(chip, cluster, prec):
    """The chip and cluster numbers every kernel relies on are sane: positive HBM bandwidth,
    capacity and SRAM; efficiencies in (0, 1] (the GEMM one of precision ``prec``);
    non-negative TDP, kernel time, latencies, host power and energies; PUE and taper >= 1."""
    _, eff_gemm = matmul_peak(chip, prec)
    return (chip[L.C_HBM_BPS] > 0 and chip[L.C_SRAM_B] > 0 and chip[L.C_HBM_B] > 0
            and chip[L.C_TDP_W] >= 0 and chip[L.C_KERNEL_S] >= 0
            and 0 < eff_gemm <= 1 and 0 < chip[L.C_ATTN_EFF] <= 1
            and 0 < chip[L.C_MEM_EFF] <= 1 and 0 < chip[L.C_NET_EFF] <= 1
            and chip[L.C_E_HBM] >= 0 and chip[L.C_E_LINK] >= 0 and chip[L.C_LEAK_W] >= 0
            and chip[L.C_BUSY_W] >= 0 and energy_per_flop(chip, prec) >= 0
            and cluster[L.K_OVERSUB] >= 1 and cluster[L.K_PUE] >= 1
            and cluster[L.K_HOST_W] >= 0 and cluster[L.K_UP_LAT_S] >= 0
            and cluster[L.K_OUT_LAT_S] >= 0)


@njit(cache=True)
def tile_elems(chip):
    """Output-tile elements of one compute unit (0 when units or clock are unknown): whole
    MACs per unit (989.4 TFLOP/s / (2 x 132 x 1.83 GHz) = 2047.9 -> 2048) x 16."""
    units = chip[L.C_UNITS]
    if not (units >= 1 and chip[L.C_CLOCK_HZ] > 0):
        return 0.0
    macs = math.floor(chip[L.C_FLOPS_BF16] / (2.0 * units * chip[L.C_CLOCK_HZ]) + 0.5)
    return TILE_ELEMS_PER_MAC * macs


@njit(cache=True)
def worst_status(counts):
    """Why no candidate was feasible: the limit the closest ones missed (latency, then power:
    they fit everything else), else the most frequent failure (S_NO_CANDIDATE if none)."""
    if counts[L.S_SLO] > 0:
        return L.S_SLO
    if counts[L.S_POWER] > 0:
        return L.S_POWER
    worst = L.S_NO_CANDIDATE
    most = 0
    for s in range(1, L.N_STATUS):
        if counts[s] > most:
            most = counts[s]
            worst = s
    return worst


@njit(cache=True)
def allreduce_time(volume_b, n, bw_bps, lat_s):
    """All-reduce of ``volume_b`` bytes over ``n`` ranks at ``bw_bps`` per rank per direction:
    the faster of a ring (2(n-1)/n V/B + 2(n-1) a) and a pipelined double binary tree
    (2 V/B + 2 log2(n) a), as NCCL picks between them."""
    if n <= 1:
        return 0.0
    ring = 2.0 * (n - 1) / n * volume_b / bw_bps + 2.0 * (n - 1) * lat_s
    tree = 2.0 * volume_b / bw_bps + 2.0 * math.log2(n) * lat_s
    return min(ring, tree)


@njit(cache=True)
def group_allreduce_time(volume_b, n, stride, domain, up_bps, out_bps, up_lat, out_lat):
    """Hierarchical all-reduce over ``n`` ranks ``stride`` apart (bandwidths already derated).

    The ``k`` ranks that share a scale-up domain reduce-scatter/all-gather there; the ``n/k``
    domains all-reduce their ``1/k`` shards over the scale-out network in parallel.
    """
    if n <= 1:
        return 0.0
    k = domain // stride
    if k < 1:
        k = 1
    if k > n:
        k = n
    while n % k != 0:
        k -= 1
    r = n // k
    t = allreduce_time(volume_b, k, up_bps, up_lat)
    if r > 1:
        t += allreduce_time(volume_b / k, r, out_bps, out_lat)
    return t


@njit(cache=True)
def scaleup_bw(group, up_bps, topology, domain):
    """Per-rank bandwidth a ring inside the scale-up domain gets: all of it on a switched
    fabric; on a k-D torus (2k links) the links of the dimensions the group spans."""
    if topology == L.TOPO_TORUS2 or topology == L.TOPO_TORUS3:
        k = 2.0 if topology == L.TOPO_TORUS2 else 3.0
        side = max(1.0, math.floor(domain ** (1.0 / k) + 0.5))  # 64 ** (1/3) = 3.9999...
        dims = 1.0
        span = side
        while span < group and dims < k:
            dims += 1.0
            span *= side
        return up_bps * dims / k
    return up_bps


@njit(cache=True)
def scaleout_link(chip, cluster):
    """(bytes/s per chip per direction, latency s) of a collective across scale-up domains:
    NIC x network efficiency, tapered by fat-tree oversubscription or dragonfly global links;
    rail-optimised networks save a switch tier of latency."""
    topo = int(cluster[L.K_TOPOLOGY])
    bps = chip[L.C_OUT_BPS] * chip[L.C_NET_EFF]
    lat = cluster[L.K_OUT_LAT_S]
    if topo == L.TOPO_FAT_TREE:
        bps = bps / cluster[L.K_OVERSUB]
    elif topo == L.TOPO_RAIL:
        lat = lat * RAIL_LATENCY_FACTOR
    elif topo == L.TOPO_DRAGONFLY:
        bps = bps * DRAGONFLY_GLOBAL_TAPER
    return bps, lat


@njit(cache=True)
def voltage(s):
    """Supply voltage at ``s`` x the peak clock, as a fraction of the voltage at peak (see
    :data:`VOLTAGE_INTERCEPT`, :data:`VOLTAGE_FLOOR`)."""
    return max(VOLTAGE_FLOOR, VOLTAGE_INTERCEPT + (1.0 - VOLTAGE_INTERCEPT) * s)


@njit(cache=True)
def at_clock(chip, s, scaled):
    """Fill ``scaled`` with ``chip`` run at ``s`` x its peak clock (``0 < s <= 1``): peak FLOP/s
    and clock x s; energy per FLOP x v^2, clock-and-control power x s v^2, leakage x v, with
    the voltage ``v`` = :func:`voltage` (leakage current grows with the voltage, so static
    power falls at least as fast as v: estimate). HBM and links keep their own clocks."""
    v = voltage(s)
    for i in range(chip.shape[0]):
        scaled[i] = chip[i]
    for i in (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4, L.C_CLOCK_HZ):
        scaled[i] = chip[i] * s
    for i in (L.C_E_FP32, L.C_E_BF16, L.C_E_FP8, L.C_E_FP4):
        scaled[i] = chip[i] * v * v
    scaled[L.C_BUSY_W] = chip[L.C_BUSY_W] * s * v * v
    scaled[L.C_LEAK_W] = chip[L.C_LEAK_W] * v


@njit(cache=True)
def next_clock(chip, power_w, scaled, state, out, clock_col):
    """One step of the clock search for a chip over its TDP (DVFS, see the module doc).

    The caller evaluated the chip at clock ``state[2]`` (x peak) and got ``power_w``; this
    records whether that fits the TDP, fills ``scaled`` (:func:`at_clock`) with the next clock
    to evaluate and returns 1, or returns 0 when done, having written the clock the chip
    sustains to ``out[clock_col]``. The last evaluation is then the answer: the highest clock
    that fits, within ``CLOCK_BISECTIONS`` bisection steps above :data:`CLOCK_FLOOR` (the
    floor's own evaluation, S_POWER, when even the floor does not fit). ``state`` = (highest
    clock known to fit or 0, lowest known not to, clock just evaluated, steps; -1 once the
    final clock is set), start ``(0, 1, 1, 0)``: the peak did not fit."""
    if power_w <= chip[L.C_TDP_W]:
        state[0] = state[2]
    else:
        state[1] = state[2]
    if state[3] < 0.0 or (state[2] == state[0] and state[3] >= CLOCK_BISECTIONS):
        out[clock_col] = state[0]  # the last evaluation was at the answer
        return 0
    if state[0] == 0.0 and state[2] == CLOCK_FLOOR:
        out[clock_col] = CLOCK_FLOOR  # even the floor draws too much: S_POWER
        return 0
    if state[0] == 0.0:
        state[2] = CLOCK_FLOOR
    elif state[3] >= CLOCK_BISECTIONS:
        state[2] = state[0]  # evaluate the answer once more: ``out`` must hold it
        state[3] = -1.0
    else:
        state[2] = 0.5 * (state[0] + state[1])
        state[3] += 1.0
    at_clock(chip, state[2], scaled)
    return 1


@njit(cache=True)
def eval_mapping(chip, cluster, model, job, mp, out):
    """Evaluate one mapping; fills ``out`` (layout ``O_*``) and returns a status code ``S_*``.

    A chip with ``C_THROTTLES`` set that would exceed its TDP runs at the highest clock that
    fits, reported in ``O_CLOCK`` (:func:`next_clock`); S_POWER only if even
    :data:`CLOCK_FLOOR` does not fit."""
    st = eval_at_clock(chip, cluster, model, job, mp, out)
    if st == L.S_POWER and chip[L.C_THROTTLES] > 0.5:
        scaled, state = np.empty(chip.shape[0]), np.array([0.0, 1.0, 1.0, 0.0])
        while next_clock(chip, out[L.O_CHIP_W], scaled, state, out, L.O_CLOCK):
            st = eval_at_clock(scaled, cluster, model, job, mp, out)
    return st


@njit(cache=True)
def eval_at_clock(chip, cluster, model, job, mp, out):
    """Evaluate one mapping on the chip as given (no throttling: over its TDP is S_POWER);
    fills ``out`` (layout ``O_*``, ``O_CLOCK`` = 1) and returns a status code ``S_*``."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    tp = mp[L.P_TP]
    pp = mp[L.P_PP]
    dp = mp[L.P_DP]
    cp = mp[L.P_CP]
    ep = mp[L.P_EP]
    vpp = mp[L.P_VPP]
    b = mp[L.P_MB]
    rc = mp[L.P_RECOMPUTE]
    zero = mp[L.P_ZERO]
    sp = mp[L.P_SP]
    if tp < 1 or pp < 1 or dp < 1 or cp < 1 or ep < 1 or vpp < 1 or b < 1:
        return L.S_INVALID
    if rc < 0 or rc > 2 or zero < 0 or zero > 3 or sp < 0 or sp > 1:
        return L.S_INVALID

    n_chips = cluster[L.K_N_CHIPS]
    layers = model[L.M_LAYERS]
    h = model[L.M_HIDDEN]
    heads = model[L.M_HEADS]
    kv_heads = model[L.M_KV_HEADS]
    f = model[L.M_FFN]
    vocab = model[L.M_VOCAB]
    gated = model[L.M_GATED] > 0.5
    experts = model[L.M_EXPERTS]
    topk = model[L.M_TOPK]
    f_moe = model[L.M_MOE_FFN]
    shared = model[L.M_SHARED]
    dense_layers = model[L.M_DENSE_LAYERS]
    seq = job[L.J_SEQ]
    gbatch = job[L.J_GBATCH]
    el_b = job[L.J_BYTES]
    prec = int(job[L.J_PREC])
    peak, eff_gemm = matmul_peak(chip, prec)
    eff_attn = chip[L.C_ATTN_EFF]
    eff_mem = chip[L.C_MEM_EFF]
    eff_net = chip[L.C_NET_EFF]
    kernel_s = chip[L.C_KERNEL_S]

    # --- input sanity (status, never an exception) ---
    if not (n_chips >= 1 and layers >= 1 and h >= 1 and heads >= 1 and kv_heads >= 1):
        return L.S_BAD_INPUT
    if not (seq >= 1 and gbatch >= 1 and el_b > 0 and vocab >= 1 and f >= 0):
        return L.S_BAD_INPUT
    imbalance = job[L.J_MOE_IMB]
    if not (imbalance >= 1.0):
        return L.S_BAD_INPUT
    if not (platform_ok(chip, cluster, prec) and chip[L.C_DOMAIN] >= 1):
        return L.S_BAD_INPUT
    peak_attn = chip[L.C_FLOPS_FP32] if prec == 0 else chip[L.C_FLOPS_BF16]
    if not (peak > 0 and peak_attn > 0):
        return L.S_NO_COMPUTE
    act_b = max(el_b, 2.0)  # activations, gradients and collectives stay 16-bit in fp8 recipes

    # --- divisibility ---
    n_used = tp * cp * pp * dp
    if n_used > n_chips:
        return L.S_INVALID
    if heads % tp != 0 or (kv_heads % tp != 0 and tp % kv_heads != 0):
        return L.S_INVALID
    if pp > layers or int(seq) % cp != 0 or int(gbatch) % (dp * b) != 0:
        return L.S_INVALID
    m = int(gbatch) // (dp * b)  # micro-batches per pipeline per step
    if vpp > 1 and (pp == 1 or m % pp != 0 or layers < pp * vpp):
        return L.S_INVALID
    is_moe = experts > 0
    if is_moe:
        if int(experts) % ep != 0 or dp % ep != 0:
            return L.S_INVALID
    elif ep != 1:
        return L.S_INVALID
    if tp == 1:
        sp = 0

    # --- network: per-chip per-direction bandwidth of each level, where each group sits ---
    topo = int(cluster[L.K_TOPOLOGY])
    domain = chip[L.C_DOMAIN]
    up_raw = chip[L.C_UP_BPS]
    out_bps, out_lat = scaleout_link(chip, cluster)
    up_lat = cluster[L.K_UP_LAT_S]
    tp_in = tp <= domain
    cp_in = tp * cp <= domain
    ep_in = tp * cp * ep <= domain
    pp_in = n_used <= domain
    # every group of more than one rank needs the link it sits on (dp may use both levels)
    needs_up = (tp > 1 and tp_in) or (cp > 1 and cp_in) or (ep > 1 and ep_in)
    needs_up = needs_up or (pp > 1 and pp_in) or (dp > 1 and tp * cp < domain)
    needs_out = (tp > 1 and not tp_in) or (cp > 1 and not cp_in) or (ep > 1 and not ep_in)
    needs_out = needs_out or (pp > 1 and not pp_in) or (dp > 1 and tp * cp * dp > domain)
    if (needs_up and not (up_raw > 0)) or (needs_out and not (out_bps > 0)):
        return L.S_NO_BW
    tp_bw = scaleup_bw(tp, up_raw, topo, domain) * eff_net if tp_in else out_bps
    tp_lat = up_lat if tp_in else out_lat

    # --- per-layer forward time of one micro-batch on one chip ---
    hbm = chip[L.C_HBM_BPS]
    sram = chip[L.C_SRAM_B]
    units = chip[L.C_UNITS]
    tile = tile_elems(chip)
    s_loc = seq / cp
    tok = b * s_loc  # tokens per micro-batch on this chip
    kvd = kv_heads * (h / heads)
    tsp = tp if sp == 1 else 1.0
    mlp_mats = 2.0 if gated else 1.0
    t_qkv, by_qkv = gemm_cost(tok, h, (h + 2.0 * kvd) / tp, peak, eff_gemm, hbm, eff_mem, sram,
                              el_b, units, tile)
    t_proj, by_proj = gemm_cost(tok, h / tp, h, peak, eff_gemm, hbm, eff_mem, sram, el_b, units,
                                tile)
    unfused = job[L.J_ATTN] > 0.5
    scores = heads / tp * s_loc * seq * b  # score elements per layer on this chip
    if unfused:
        attn_flops = 4.0 * b * s_loc * seq * h / tp  # two GEMMs over the full (masked) scores
        t_attn_c = attn_flops / (peak_attn * chip[L.C_GEMM_EFF])  # 16-bit GEMMs
        attn_bytes = UNFUSED_SCORE_BYTES * scores
        t_attn = t_attn_c + attn_bytes / (hbm * eff_mem)
        t_attn_bwd = 2.0 * t_attn
        attn_bwd_x = 2.0
    else:
        attn_flops = 4.0 * b * s_loc * seq * h / tp * 0.5  # causal: half the scores
        attn_bytes = act_b * tok * (2.0 * h + 2.0 * kvd) / tp
        t_attn = max(attn_flops / (peak_attn * eff_attn), attn_bytes / (hbm * eff_mem))
        t_attn_bwd = 2.5 * t_attn
        attn_bwd_x = 2.5
    elem_bytes = act_b * tok * 12.0 * h / tsp
    t_up, by_up = gemm_cost(tok, h, mlp_mats * f / tp, peak, eff_gemm, hbm, eff_mem, sram, el_b,
                            units, tile)
    t_down, by_down = gemm_cost(tok, f / tp, h, peak, eff_gemm, hbm, eff_mem, sram, el_b, units,
                                tile)
    t_dense_mlp = t_up + t_down
    by_dense = by_up + by_down
    dense_elem = act_b * tok * (mlp_mats + 1.0) * f / tp
    t_moe_mlp = 0.0
    by_moe = 0.0
    moe_elem = 0.0
    if is_moe:
        # routed tokens spread evenly over experts; EP groups exchange them (all-to-all)
        tok_exp = tok * topk * ep / experts
        t_up, by_up = gemm_cost(tok_exp, h, mlp_mats * f_moe / tp, peak, eff_gemm, hbm, eff_mem,
                                sram, el_b, units, tile)
        t_down, by_down = gemm_cost(tok_exp, f_moe / tp, h, peak, eff_gemm, hbm, eff_mem, sram,
                                    el_b, units, tile)
        t_moe_mlp = experts / ep * (t_up + t_down) * imbalance  # the busiest expert sets the pace
        by_moe = experts / ep * (by_up + by_down)
        if shared > 0:
            t_up, by_up = gemm_cost(tok, h, shared * mlp_mats * f_moe / tp, peak, eff_gemm, hbm,
                                    eff_mem, sram, el_b, units, tile)
            t_down, by_down = gemm_cost(tok, shared * f_moe / tp, h, peak, eff_gemm, hbm,
                                        eff_mem, sram, el_b, units, tile)
            t_moe_mlp += t_up + t_down
            by_moe += by_up + by_down
        moe_elem = act_b * tok * topk * (mlp_mats + 1.0) * f_moe / tp
    n_moe_layers = layers - dense_layers if is_moe else 0.0
    n_dense_layers = layers - n_moe_layers
    frac_moe = n_moe_layers / layers
    t_mlp = (1.0 - frac_moe) * t_dense_mlp + frac_moe * t_moe_mlp
    elem_bytes += (1.0 - frac_moe) * dense_elem + frac_moe * moe_elem
    t_elem = elem_bytes / (hbm * eff_mem)
    t_overhead = KERNELS_PER_LAYER * kernel_s
    t_fwd = t_qkv + t_proj + t_attn + t_mlp + t_elem + t_overhead
    t_bwd = 2.0 * (t_qkv + t_proj + t_mlp + t_elem) + t_attn_bwd + 2.0 * t_overhead
    t_recompute = 0.0
    if rc == 2:
        t_recompute = t_fwd
    elif rc == 1:
        t_recompute = t_attn
    t_layer_compute = t_fwd + t_bwd + t_recompute
    # work of one layer and micro-batch (forward, backward = 2x GEMMs, recompute)
    gemm_flops_fwd = 2.0 * tok * h * (2.0 * h + 2.0 * kvd) / tp
    gemm_flops_fwd += (1.0 - frac_moe) * 2.0 * tok * (mlp_mats + 1.0) * h * f / tp
    gemm_flops_fwd += frac_moe * 2.0 * tok * (mlp_mats + 1.0) * h * f_moe * (topk + shared) / tp
    bytes_fwd = by_qkv + by_proj + (1.0 - frac_moe) * by_dense + frac_moe * by_moe + elem_bytes
    layer_flops = 3.0 * gemm_flops_fwd + (1.0 + attn_bwd_x) * attn_flops
    layer_bytes = 3.0 * bytes_fwd + (1.0 + attn_bwd_x) * attn_bytes
    if rc == 2:
        layer_flops += gemm_flops_fwd + attn_flops
        layer_bytes += bytes_fwd + attn_bytes
    elif rc == 1:
        layer_flops += attn_flops
        layer_bytes += attn_bytes

    # communication per layer (fwd + bwd)
    t_layer_tp = 0.0
    layer_link = 0.0  # bytes this chip sends per layer and micro-batch
    if tp > 1:
        t_layer_tp = 4.0 * allreduce_time(act_b * tok * h, tp, tp_bw, tp_lat)
        layer_link = 4.0 * 2.0 * (tp - 1.0) / tp * act_b * tok * h
        if rc == 2:
            t_layer_tp *= 1.5  # the recomputed forward repeats its two collectives
            layer_link *= 1.5
    t_layer_cp = 0.0
    if cp > 1:
        cp_bw = scaleup_bw(tp * cp, up_raw, topo, domain) * eff_net if cp_in else out_bps
        cp_lat = up_lat if cp_in else out_lat
        kv_vol = act_b * 2.0 * b * s_loc * kvd / tp
        t_ring = (cp - 1) * (kv_vol / cp_bw + cp_lat)
        layer_link += 3.0 * (cp - 1) * kv_vol
        # forward passes K/V around the ring; backward passes K/V and their gradients
        t_layer_cp = max(0.0, t_ring - t_attn) + max(0.0, 2.0 * t_ring - t_attn_bwd)
    t_layer_ep = 0.0
    if is_moe and ep > 1:
        ep_bw = scaleup_bw(tp * cp * ep, up_raw, topo, domain) * eff_net if ep_in else out_bps
        ep_lat = up_lat if ep_in else out_lat
        a2a_vol = act_b * tok * topk * h / tp * (ep - 1.0) / ep * imbalance
        t_layer_ep = frac_moe * 6.0 * (a2a_vol / ep_bw + (ep - 1.0) * ep_lat)
        layer_link += frac_moe * 6.0 * a2a_vol
    t_layer = t_layer_compute + t_layer_tp + t_layer_cp + t_layer_ep

    # --- pipeline stage (the last one also runs the output layer) ---
    layers_stage = math.ceil(layers / pp)
    t_logits_f, by_logits = gemm_cost(tok, h, vocab / tp, peak, eff_gemm, hbm, eff_mem, sram,
                                      el_b, units, tile)
    by_logits += 3.0 * 4.0 * tok * vocab / tp  # fp32 softmax + loss
    t_logits_f += 3.0 * 4.0 * tok * vocab / tp / (hbm * eff_mem)
    t_logits = 3.0 * t_logits_f
    t_stage = layers_stage * t_layer + t_logits
    t_p2p = 0.0
    p2p_bytes = 0.0
    if pp > 1:
        pp_bw = scaleup_bw(n_used, up_raw, topo, domain) * eff_net if pp_in else out_bps
        pp_lat = up_lat if pp_in else out_lat
        p2p_vol = act_b * tok * h / tp  # Megatron scatter/gather optimisation
        t_p2p = 2.0 * vpp * (p2p_vol / pp_bw + pp_lat)
        p2p_bytes = 2.0 * vpp * p2p_vol
    t_stage_total = t_stage + t_p2p
    t_bubble = (pp - 1.0) / vpp * t_stage_total
    t_pipe = m * t_stage_total + t_bubble

    # --- parameters on the busiest chip ---
    attn_p = h * (2.0 * h + 2.0 * kvd)
    dense_mlp_p = (mlp_mats + 1.0) * h * f
    moe_p = (mlp_mats + 1.0) * h * f_moe * (experts / ep + shared)
    layer_p_avg = attn_p + (1.0 - frac_moe) * dense_mlp_p + frac_moe * moe_p
    p_chip = (layers_stage * layer_p_avg + vocab * h) / tp
    # --- data-parallel gradient reduction and ZeRO ---
    dp_stride = tp * cp
    up_dp = scaleup_bw(tp * cp * dp, up_raw, topo, domain) * eff_net
    t_dp = group_allreduce_time(GRAD_B * p_chip, dp, dp_stride, domain, up_dp, out_bps, up_lat,
                                out_lat)
    if zero == 3 and dp > 1:
        # FSDP gathers parameters for forward and backward of every micro-batch (two
        # all-gathers = one all-reduce volume), prefetched under the compute of all of them
        t_gather = group_allreduce_time(WEIGHT_B * p_chip, dp, dp_stride, domain, up_dp,
                                        out_bps, up_lat, out_lat)
        t_dp_exposed = max(0.0, m * t_gather + t_dp - m * layers_stage * t_layer_compute)
    else:
        # gradients reduce under the backward pass of the last micro-batch
        t_dp_exposed = max(0.0, t_dp - layers_stage * (t_bwd + t_recompute))
    dp_link = 2.0 * (dp - 1.0) / dp * GRAD_B * p_chip
    if zero == 3 and dp > 1:
        dp_link += m * 2.0 * (dp - 1.0) / dp * WEIGHT_B * p_chip
    shard = dp if zero >= 1 else 1.0
    opt_bytes = ADAM_BYTES_PER_PARAM * p_chip / shard
    t_opt = opt_bytes / (hbm * eff_mem)

    step = t_pipe + t_dp_exposed + t_opt
    if not (step > 0) or not math.isfinite(step):
        return L.S_BAD_INPUT

    # --- memory on the busiest (first) stage ---
    w_b = WEIGHT_B * p_chip / (dp if zero >= 3 else 1.0)
    g_b = GRAD_B * p_chip / (dp if zero >= 2 else 1.0)
    o_b = OPT_B * p_chip / (dp if zero >= 1 else 1.0)
    act_scale = act_b / 2.0  # the formulas count 2-byte activations
    sbh = s_loc * b * h
    repl = 10.0 * sbh  # norms, block inputs and dropout masks: not split without SP
    mlp_w = (6.0 if gated else 4.0) * s_loc * b
    mlp_act = (1.0 - frac_moe) * mlp_w * f + frac_moe * mlp_w * f_moe * (topk + shared)
    # split by tp: Q and the projection input (4 sbh), K and V (4 sb kvd), the MLP hidden;
    # MHA with a 4h GELU MLP gives Korthikanti's 24 sbh / t
    split = 4.0 * sbh + 4.0 * s_loc * b * kvd + mlp_act
    full_layer = act_scale * (repl / tsp + split / tp)
    if unfused:  # softmax output, dropout mask and output of the scores (5 bytes/element)
        full_layer += 5.0 * scores
    act_layer = full_layer
    if rc == 2:
        act_layer = act_scale * 2.0 * sbh / tsp
    elif rc == 1 and unfused:
        act_layer -= 5.0 * scores  # selective recompute drops exactly the score activations
    in_flight = min(pp, m) * 1.0
    if vpp > 1:
        in_flight *= 1.0 + (pp - 1.0) / (pp * vpp)
    act_b_total = layers_stage * in_flight * act_layer
    if rc == 2:  # working set while recomputing one layer
        act_b_total += full_layer
    logits_b = 4.0 * s_loc * b * vocab / tp  # fp32 logits of one micro-batch (last stage)
    mem = w_b + g_b + o_b + act_b_total + logits_b + BUFFER_B

    tokens = seq * gbatch
    out[L.O_STEP_S] = step
    out[L.O_TOKENS_PER_S] = tokens / step
    n_dense_p = n_dense_layers * (attn_p + dense_mlp_p)
    n_active_moe = n_moe_layers * (attn_p + (mlp_mats + 1.0) * h * f_moe * (topk + shared))
    model_flops_tok = 6.0 * (n_dense_p + n_active_moe + vocab * h) + 12.0 * layers * h * seq
    out[L.O_MFU] = model_flops_tok * tokens / (step * n_chips * peak)
    out[L.O_MEM_B] = mem
    busy = m * layers_stage * t_layer_compute / step
    if busy > 1.0:
        busy = 1.0
    # energy of one step on the busiest chip: what it computes, moves and sends, + leakage
    step_flops = m * (layers_stage * layer_flops + 3.0 * 2.0 * tok * h * vocab / tp)
    step_hbm = m * (layers_stage * layer_bytes + 3.0 * by_logits) + opt_bytes
    step_link = m * (layers_stage * layer_link + p2p_bytes) + dp_link
    w_compute = energy_per_flop(chip, prec) * step_flops / step
    w_hbm = chip[L.C_E_HBM] * step_hbm / step
    w_link = chip[L.C_E_LINK] * step_link / step
    w_busy = chip[L.C_BUSY_W] * busy
    chip_w = w_compute + w_hbm + w_link + chip[L.C_LEAK_W] + w_busy
    out[L.O_W_COMPUTE] = w_compute
    out[L.O_W_HBM] = w_hbm
    out[L.O_W_LINK] = w_link
    out[L.O_W_BUSY] = w_busy
    out[L.O_W_LEAK] = chip[L.C_LEAK_W]
    cluster_w = n_chips * (chip_w + cluster[L.K_HOST_W]) * cluster[L.K_PUE]
    out[L.O_FLOPS] = step_flops
    out[L.O_HBM_B] = step_hbm
    out[L.O_LINK_B] = step_link
    out[L.O_CHIP_W] = chip_w
    out[L.O_CLUSTER_W] = cluster_w
    out[L.O_TOK_PER_J] = tokens / step / cluster_w if cluster_w > 0 else 0.0
    out[L.O_T_COMPUTE] = m * layers_stage * t_layer_compute
    out[L.O_T_TP] = m * layers_stage * (t_layer_tp + t_layer_cp + t_layer_ep)
    out[L.O_T_BUBBLE] = t_bubble
    out[L.O_T_DP] = t_dp_exposed
    out[L.O_T_OPT] = t_opt
    out[L.O_T_PP] = m * t_p2p
    out[L.O_BUSY] = busy
    out[L.O_N_USED] = n_used
    out[L.O_CLOCK] = 1.0
    if mem > chip[L.C_HBM_B]:
        return L.S_OOM
    if chip_w > chip[L.C_TDP_W]:
        return L.S_POWER
    return L.S_OK


@njit(cache=True)
def _choices(fixed_value, lo, hi, pow2):
    """Candidate values for one mapping field: the fixed value, or a range (powers of 2)."""
    if fixed_value >= 0:
        res = np.empty(1, np.int64)
        res[0] = fixed_value
        return res
    cnt = 0
    v = lo
    while v <= hi:
        cnt += 1
        v = v * 2 if pow2 else v + 1
    res = np.empty(cnt, np.int64)
    v = lo
    for i in range(cnt):
        res[i] = v
        v = v * 2 if pow2 else v + 1
    return res


@njit(cache=True)
def _gemm_flops_per_token(model):
    """Forward GEMM FLOPs per token (layers + output layer), a lower bound on the real work."""
    h = model[L.M_HIDDEN]
    kvd = model[L.M_KV_HEADS] * h / model[L.M_HEADS]
    mats = 3.0 if model[L.M_GATED] > 0.5 else 2.0
    layers = model[L.M_LAYERS]
    n_moe = layers - model[L.M_DENSE_LAYERS] if model[L.M_EXPERTS] > 0 else 0.0
    mlp = (layers - n_moe) * mats * h * model[L.M_FFN]
    mlp += n_moe * mats * h * model[L.M_MOE_FFN] * (model[L.M_TOPK] + model[L.M_SHARED])
    return 2.0 * (layers * h * (2.0 * h + 2.0 * kvd) + mlp + model[L.M_VOCAB] * h)


@njit(cache=True)
def search_mappings(chip, cluster, model, job, fixed, best_mp, best_out, counts):
    """Find the fastest feasible mapping (ties: least memory); fills ``best_mp``/``best_out``.

    ``fixed`` (int64[MAP_LEN]) holds -1 for searched fields. Searched: tp (powers of 2 up to
    the scale-up domain), cp (powers of 2 while each rank keeps >= 2k tokens), pp (divisors
    of the layer count and powers of 2), dp (divisors of the global batch that fit the cluster,
    largest first), ep (powers of 2 dividing the experts and dp), vpp (powers of 2), the
    micro-batch, recompute and ZeRO stage; sequence parallel is on whenever tp > 1.
    Branch and bound: a (tp, cp, pp, dp) block whose compute lower bound (GEMM FLOPs at peak
    x efficiency on the chips it uses) cannot beat the best step so far is skipped, so the
    result equals that of the full enumeration. ``counts[s]`` counts evaluated candidates by
    status (``counts[S_OK]`` feasible ones). Returns S_OK if a feasible mapping was found,
    else the most frequent failure.
    """
    for i in range(counts.shape[0]):
        counts[i] = 0
    for i in range(L.MAP_LEN):
        if fixed[i] == 0 and i <= L.P_MB:  # a degree or micro-batch fixed at 0 is invalid
            counts[L.S_INVALID] += 1
            return L.S_INVALID
    n_chips = int(cluster[L.K_N_CHIPS])
    layers = int(model[L.M_LAYERS])
    gbatch = int(job[L.J_GBATCH])
    seq = int(job[L.J_SEQ])
    experts = int(model[L.M_EXPERTS])
    domain = int(chip[L.C_DOMAIN]) if chip[L.C_DOMAIN] >= 1 else 1
    prec = int(job[L.J_PREC])
    peak, eff = matmul_peak(chip, prec)
    rate = peak * eff
    work = 3.0 * _gemm_flops_per_token(model) * seq * gbatch  # fwd + bwd GEMM FLOPs per step
    prune = rate > 0 and work > 0
    mp = np.zeros(L.MAP_LEN, np.int64)
    out = np.zeros(L.OUT_LEN)
    best_step = np.inf
    best_mem = np.inf
    tps = _choices(fixed[L.P_TP], 1, max(1, min(domain, int(model[L.M_HEADS]))), True)
    cp_max = 1
    while cp_max * 2 <= MAX_CP and seq // (cp_max * 2) >= MIN_TOKENS_PER_CP_RANK:
        cp_max *= 2
    cps = _choices(fixed[L.P_CP], 1, cp_max, True)
    eps = _choices(fixed[L.P_EP], 1, max(1, experts), True)
    rcs = _choices(fixed[L.P_RECOMPUTE], 0, 2, False)
    zeros = _choices(fixed[L.P_ZERO], 0, 3, False)
    for tp in tps:
        for cp in cps:
            if tp * cp > n_chips:
                continue
            pps = _choices(fixed[L.P_PP], 1, layers, False)
            for pp in pps:
                if fixed[L.P_PP] < 0 and layers % pp != 0 and (pp & (pp - 1)) != 0:
                    continue
                if tp * cp * pp > n_chips:
                    break
                dp_max = n_chips // (tp * cp * pp)
                dps = _choices(fixed[L.P_DP], 1, dp_max, False)
                vpps = _choices(fixed[L.P_VPP], 1, max(1, layers // pp) if pp > 1 else 1, True)
                for di in range(dps.shape[0] - 1, -1, -1):  # largest dp first
                    dp = dps[di]
                    if fixed[L.P_DP] < 0 and gbatch % dp != 0:
                        continue
                    if prune and work / (rate * tp * cp * pp * dp) >= best_step:
                        continue
                    per_dp = gbatch // dp if gbatch % dp == 0 else 0
                    mbs = _choices(fixed[L.P_MB], 1, min(per_dp, MAX_MICRO_BATCH), False)
                    for b in mbs:
                        if fixed[L.P_MB] < 0 and per_dp % b != 0:
                            continue
                        for ep in eps:
                            if fixed[L.P_EP] < 0 and (experts % ep != 0 or dp % ep != 0):
                                continue
                            for vpp in vpps:
                                if fixed[L.P_VPP] < 0 and vpp > 1 and (
                                        layers % (pp * vpp) != 0 or (per_dp // b) % pp != 0):
                                    continue
                                for rc in rcs:
                                    for zero in zeros:
                                        mp[L.P_TP] = tp
                                        mp[L.P_PP] = pp
                                        mp[L.P_DP] = dp
                                        mp[L.P_CP] = cp
                                        mp[L.P_EP] = ep
                                        mp[L.P_VPP] = vpp
                                        mp[L.P_MB] = b
                                        mp[L.P_RECOMPUTE] = rc
                                        mp[L.P_ZERO] = zero
                                        if fixed[L.P_SP] >= 0:
                                            mp[L.P_SP] = fixed[L.P_SP]
                                        else:
                                            mp[L.P_SP] = 1 if tp > 1 else 0
                                        st = eval_mapping(chip, cluster, model, job, mp, out)
                                        counts[st] += 1
                                        if st != L.S_OK:
                                            continue
                                        step = out[L.O_STEP_S]
                                        mem = out[L.O_MEM_B]
                                        if step < best_step or (
                                            step == best_step and mem < best_mem
                                        ):
                                            best_step = step
                                            best_mem = mem
                                            best_mp[:] = mp
                                            best_out[:] = out
    if best_step < np.inf:
        return L.S_OK
    return worst_status(counts)


@njit(cache=True, parallel=True)
def search_population(chips, clusters, model, job, fixed, best_mps, best_outs, counts, status):
    """:func:`search_mappings` for every row of ``chips``/``clusters`` (one design per row)."""
    for i in prange(chips.shape[0]):
        status[i] = search_mappings(
            chips[i], clusters[i], model, job, fixed, best_mps[i], best_outs[i], counts[i]
        )
