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
