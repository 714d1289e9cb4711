"""Collectives: alpha-beta costs on the two network levels.

Groups are placed Megatron-style, tensor parallel innermost (tp, cp, ep/dp, pp). A group inside
the scale-up domain uses the scale-up fabric (switched: the chip's full link bandwidth; 2D/3D
torus: the links of the dimensions it spans); a group that spans domains crosses the scale-out
network (fat-tree with oversubscription, rail-optimised, dragonfly with tapered global links).

* All-reduce (gradients, tensor parallel): the faster of a ring and a double binary tree; across
  domains hierarchical and rail-parallel (:func:`group_allreduce_time`), as NCCL runs it.
* All-gather / reduce-scatter of sharded parameters (ZeRO-3, FSDP): one flat ring over the
  whole data-parallel group (:func:`ring_allgather_time`): a ring's pace is its slowest hop,
  a rank's NIC when the group spans domains, and its latency grows with the ring length.
* All-to-all (expert parallel): each rank's share for peers in its domain over the scale-up
  fabric, the rest over its NIC, both at once (:func:`alltoall_time`).
"""

from __future__ import annotations

import math

from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.memory import WEIGHT_B

RAIL_LATENCY_FACTOR = 0.75
"""Rail-optimised networks skip one switch tier for rail-aligned traffic (estimate)."""
DRAGONFLY_GLOBAL_TAPER = 0.5
"""Share of NIC bandwidth a dragonfly's global links sustain for group-crossing collectives
(Kim et al. 2008 balance global links at ~1/2 of injection for uniform traffic)."""


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
def ranks_in_domain(n, stride, domain):
    """How many of ``n`` ranks ``stride`` apart share one scale-up domain (a divisor of n)."""
    k = domain // stride
    if k < 1:
        k = 1
    if k > n:
        k = n
    while n % k != 0:
        k -= 1
    return k


@njit(cache=True)
def group_allreduce_time(volume_b, n, stride, domain, up_bps, out_bps, up_lat, out_lat):
    """Hierarchical all-reduce over ``n`` ranks ``stride`` apart (bandwidths already derated).

    The ``k`` ranks that share a scale-up domain reduce-scatter/all-gather there; the ``n/k``
    domains all-reduce their ``1/k`` shards over the scale-out network in parallel.
    """
    if n <= 1:
        return 0.0
    k = ranks_in_domain(n, stride, domain)
    r = n // k
    t = allreduce_time(volume_b, k, up_bps, up_lat)
    if r > 1:
        t += allreduce_time(volume_b / k, r, out_bps, out_lat)
    return t


@njit(cache=True)
def ring_allgather_time(volume_b, n, bw_bps, lat_s):
    """All-gather (or reduce-scatter) of ``volume_b`` bytes in all (each rank holds 1/n) over
    a flat ring of ``n`` ranks whose slowest hop runs at ``bw_bps``: (n-1)/n V/B + (n-1) a."""
    if n <= 1:
        return 0.0
    return (n - 1.0) / n * volume_b / bw_bps + (n - 1.0) * lat_s


@njit(cache=True)
def alltoall_time(volume_b, n, stride, domain, up_bps, out_bps, up_lat, out_lat):
    """All-to-all where each of ``n`` ranks (``stride`` apart) sends ``volume_b`` bytes spread
    evenly over the group (its own share stays): the part for peers in its scale-up domain
    over the fabric, the rest over its NIC, concurrently, plus one latency per peer."""
    if n <= 1:
        return 0.0
    k = ranks_in_domain(n, stride, domain)
    t_in = volume_b * (k - 1.0) / n / up_bps if k > 1 else 0.0
    t_out = volume_b * (n - k) / n / out_bps if n > k else 0.0
    lat = (k - 1.0) * up_lat + (n - k) * out_lat
    return max(t_in, t_out) + lat


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
def level(inner, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat):
    """(bytes/s per rank, latency s) of a group whose ranks, with the degrees placed inside
    it, span ``inner`` consecutive chips: the scale-up fabric (the torus dimensions that many
    chips fill) if ``inner <= domain``, else the scale-out network."""
    if inner <= domain:
        return scaleup_bw(inner, up_raw, topo, domain) * eff_net, up_lat
    return out_bps, out_lat


@njit(cache=True)
def gradient_sync(zero, hsdp, grad_b, p_nonexp, p_exp, dpc, edp, sh, sh_e, tp, ep, domain,
                  up_raw, topo, eff_net, out_bps, up_lat, out_lat):
    """``(t_rs, t_ag)`` seconds of one step's data-parallel reductions outside ZeRO-3: the
    gradients (``grad_b`` bytes each) of ``p_nonexp`` weights over ``dpc`` = dp x cp replicas
    and of ``p_exp`` expert weights over their ``edp`` replicas, reduce-scattered (ZeRO >= 1,
    then the updated 16-bit weights all-gathered: ``t_ag``) or all-reduced; under ZeRO-3 with
    hybrid sharding (``hsdp``) the ``sh``/``sh_e``-way shards all-reduced across domains."""
    t_rs = 0.0  # gradient reduce-scatter or all-reduce of one step
    t_ag = 0.0  # all-gather of the updated weights (distributed optimizer)
    if zero == 3:
        if hsdp == 1:
            t_rs = allreduce_time(grad_b * p_nonexp / sh, dpc // sh, out_bps, out_lat)
            if p_exp > 0 and edp // sh_e > 1:
                t_rs += allreduce_time(grad_b * p_exp / sh_e, edp // sh_e, out_bps, out_lat)
    else:
        up_dp = scaleup_bw(tp * dpc, up_raw, topo, domain) * eff_net  # the in-domain level
        t_ar = group_allreduce_time(grad_b * p_nonexp, dpc, tp, domain, up_dp, out_bps, up_lat,
                                    out_lat)
        if edp > 1 and p_exp > 0:
            t_ar += group_allreduce_time(grad_b * p_exp, edp, tp * ep, domain, up_dp, out_bps,
                                         up_lat, out_lat)
        if zero >= 1:
            # distributed optimizer: reduce-scatter the gradients, all-gather the updated
            # 16-bit weights under the forward pass of the next step's first micro-batch
            # (Megatron's overlap_grad_reduce and overlap_param_gather)
            t_rs = 0.5 * t_ar
            t_ag = t_rs * WEIGHT_B / grad_b
        else:
            t_rs = t_ar
    return t_rs, t_ag
