"""Pipeline parallelism: 1F1B with ``vpp`` interleaved virtual stages.

A step of ``m`` micro-batches takes ``(m + (pp - 1) / vpp)`` stage times (the bubble is
``(pp - 1) / vpp`` of them); the slowest stage sets the pace: the first holds the leading
dense layers of a MoE model, the last the output layer. Stages exchange one activation per
micro-batch and virtual stage each way (Megatron's scatter/gather optimisation: 1/tp of it
per rank).
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True)
def stage_layers(layers, pp, dense_layers):
    """The layer mix of the stages that can be the slowest, for ``layers`` split as evenly as
    possible over ``pp`` stages (the first ``layers % pp`` stages hold one more) with the
    ``dense_layers`` leading layers dense: (layers, dense layers) of the first stage, of the
    last stage, and the layers of the largest non-last stage without dense layers (0 if
    none): a 5-tuple."""
    q = layers // pp
    r = layers - q * pp
    n0 = q + (1.0 if r > 0 else 0.0)
    start_last = (pp - 1.0) * q + min(pp - 1.0, r)
    n_last = layers - start_last
    mid = 0.0
    # the first stage whose first layer is past the dense ones
    if dense_layers <= r * (q + 1.0):
        i = math.ceil(dense_layers / (q + 1.0))
    else:
        i = r + math.ceil((dense_layers - r * (q + 1.0)) / q)
    if i < pp - 1.0:
        mid = q + (1.0 if i < r else 0.0)
    return (n0, min(dense_layers, n0), n_last,
            min(n_last, max(0.0, dense_layers - start_last)), mid)


@njit(cache=True)
def pipe_time(m, pp, vpp, t_stage, t_p2p):
    """(seconds of the pipelined step, seconds of its bubble) for ``m`` micro-batches of
    ``t_stage`` compute + ``t_p2p`` point-to-point seconds per stage."""
    t = t_stage + t_p2p
    bubble = (pp - 1.0) / vpp * t
    return m * t + bubble, bubble


@njit(cache=True)
def stage_time(mix, pp, f_d, f_m, b_d, b_m, logits_f, logits_b, rs_mb):
    """(time of the slowest stage per micro-batch, its backward part), s, for the layer mix of
    :func:`stage_layers`: each stage runs its layers' forward streams (``f_d`` dense, ``f_m``
    MoE) and backward streams (``b_d``, ``b_m``), the last (or only) stage also the output
    layer (``logits_f`` forward, ``logits_b`` backward); a per-micro-batch gradient
    reduce-scatter of ``rs_mb`` (ZeRO-2) runs beside each stage's backward."""
    first_b = mix[1] * b_d + (mix[0] - mix[1]) * b_m
    first_f = mix[1] * f_d + (mix[0] - mix[1]) * f_m
    if pp == 1:  # one stage: its layers and the output layer
        pace_b = first_b + logits_b
        return first_f + logits_f + max(pace_b, rs_mb), pace_b
    t_stage = first_f + max(first_b, rs_mb)
    pace_b = first_b
    last_b = mix[3] * b_d + (mix[2] - mix[3]) * b_m + logits_b
    t_last = mix[3] * f_d + (mix[2] - mix[3]) * f_m + logits_f + max(last_b, rs_mb)
    if t_last > t_stage:
        t_stage = t_last
        pace_b = last_b
    mid_b = mix[4] * b_m
    if mid_b > 0.0:
        t_mid = mix[4] * f_m + max(mid_b, rs_mb)
        if t_mid > t_stage:
            t_stage = t_mid
            pace_b = mid_b
    return t_stage, pace_b
