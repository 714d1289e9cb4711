"""Host memory as a second tier of a training chip: what a mapping keeps there, and the time
the copies and the host's optimizer step add.

A mapping's ``P_OFFLOAD`` bits say which model states live in host memory (the layer inputs
of offloaded recompute, ``P_RECOMPUTE = 3``, are :mod:`.memory`'s and :mod:`.layer`'s):

* :data:`OFF_OPTIMIZER`: the fp32 master weights and Adam moments of the chip's shard stay in
  host memory and the host CPU runs the Adam step (ZeRO-Offload, Ren et al. 2021, sec. 4):
  the gradients travel down and the updated 16-bit weights come back over the host link, the
  update streams the states through host DRAM (:func:`host_adam_time`).
* :data:`OFF_WEIGHTS`: the 16-bit weights and their gradients stay in host memory and stream
  to the chip a layer at a time, ahead of its forward and its backward, the gradients back
  after it (ZeRO-Infinity's parameter offload, Rajbhandari et al. 2021, sec. 5; Calculon's
  weight offload, Isaev et al. 2023); :data:`RESIDENT_LAYERS` layers' worth stay on the chip.
  Only without sharded gradients (ZeRO 0 or 1: the host accumulates them).

The copies run beside the compute stream: a layer exposes what its own forward or backward
does not hide (:func:`layer_host_time`), and every copied byte also passes through HBM once.
Offloading never makes a mapping faster than the same mapping kept on the chip (the optimizer
step takes the longer of the host's and the chip's), so the mapping search tries it only
where the chip's memory does not hold the mapping (:mod:`.train_search`).
"""

from __future__ import annotations

from numba import njit

OFF_OPTIMIZER = 1
"""P_OFFLOAD bit: optimizer states in host memory, Adam on the host CPU."""
OFF_WEIGHTS = 2
"""P_OFFLOAD bit: 16-bit weights and gradients in host memory, streamed per layer."""
RESIDENT_LAYERS = 2.0
"""Layers whose weights and gradients an offloading chip holds at once: the one computing
and the one in flight (as ZeRO-3's prefetch, :data:`.memory.ZERO3_PREFETCH_LAYERS`)."""


@njit(cache=True)
def offload_ok(off, zero):
    """Whether offload bits ``off`` (0..3) go with ZeRO stage ``zero``: weights offload needs
    the whole gradients on the chip's replica (ZeRO 0 or 1)."""
    if off < 0 or off > 3:
        return False
    return (off & OFF_WEIGHTS) == 0 or zero <= 1


@njit(cache=True)
def resident_states(w_b, g_b, o_b, off, big_layer_p, weight_b, grad_b):
    """``(weights, gradients, optimizer, host)`` bytes: what of the model states ``w_b``,
    ``g_b``, ``o_b`` (bytes on the chip without offload) stays in HBM under offload bits
    ``off``, and what host memory holds; ``big_layer_p`` the parameters of the chip's largest
    layer, ``weight_b``/``grad_b`` bytes per weight and gradient."""
    host = 0.0
    if off & OFF_OPTIMIZER:
        host += o_b
        o_b = 0.0
    if off & OFF_WEIGHTS:
        host += w_b + g_b
        w_b = min(w_b, RESIDENT_LAYERS * weight_b * big_layer_p)
        g_b = min(g_b, RESIDENT_LAYERS * grad_b * big_layer_p)
    return w_b, g_b, o_b, host


@njit(cache=True)
def layer_host_time(x_act, p_layer, off, t_fwd, t_bwd, weight_b, grad_b, host_bps, hbm_bps):
    """``(exposed seconds, bytes over the host link)`` of one layer's host copies for one
    micro-batch: ``x_act`` bytes of offloaded layer input out under the forward and back under
    the backward; under :data:`OFF_WEIGHTS` its ``p_layer`` weights in before the forward and
    again before the backward (with its recompute), and their gradients out after it.
    ``t_fwd``/``t_bwd`` the compute each pass hides copies under (s), ``host_bps`` the link
    and ``hbm_bps`` the HBM streaming rate (bytes/s): each copied byte passes HBM once."""
    w = weight_b * p_layer if off & OFF_WEIGHTS else 0.0
    g = grad_b * p_layer if off & OFF_WEIGHTS else 0.0
    x_f = x_act + w
    x_b = x_act + w + g
    if x_f + x_b <= 0.0:
        return 0.0, 0.0
    t = (max(0.0, x_f / host_bps - t_fwd) + max(0.0, x_b / host_bps - t_bwd)
         + (x_f + x_b) / hbm_bps)
    return t, x_f + x_b


@njit(cache=True)
def host_adam_time(params, weights_on_host, adam_b, weight_b, grad_b, host_bps, dram_bps):
    """``(seconds, bytes over the host link)`` of the host CPU's Adam step over ``params``
    local parameters (ZeRO-Offload): gradients down and 16-bit weights up over the link (not
    when they live on the host already), ``adam_b`` bytes per parameter through host DRAM at
    ``dram_bps``; the two overlap (the update streams as the gradients arrive)."""
    link = 0.0 if weights_on_host else (grad_b + weight_b) * params
    return max(link / host_bps, adam_b * params / dram_bps), link
