"""Checkpoint/restart arithmetic: the checkpoint of a training job, the interval that wastes
least, and the share of wall time that still advances training (effective training time).

Daly's model (J. T. Daly, "A higher order estimate of the optimum checkpoint interval for
restart dumps", Future Generation Computer Systems 22(3), 2006): with failures arriving at
rate 1/M (exponential), a checkpoint that blocks training for ``delta`` every ``tau`` seconds
of work, and ``R`` seconds to recover after each failure, the expected wall time per second
of work is ``M exp(R/M) (exp((tau + delta)/M) - 1) / tau`` (his eq. 13), and the interval that
minimises it is, to second order, ``sqrt(2 delta M) (1 + sqrt(delta/(2M))/3 + delta/(18M)) -
delta`` for ``delta < 2M`` (his eq. 37; ``M`` beyond).

Example:
    >>> round(effective_fraction(tau_s=3600.0, delta_s=60.0, recover_s=600.0, mtbf_s=1e9), 4)
    0.9836
"""

from __future__ import annotations

import math

OPTIMIZER_BYTES_PER_PARAM = 12.0
"""fp32 master weights, Adam first and second moments (Rajbhandari et al., "ZeRO", SC'20,
section 3.1: mixed-precision Adam keeps 4 + 4 + 4 bytes of optimizer state per parameter)."""
WEIGHT_BYTES_PER_PARAM = 2.0
"""bf16 weights (the same paper: 2 bytes of fp16/bf16 parameters)."""


def checkpoint_bytes(params: float) -> float:
    """Bytes of a full training checkpoint of ``params`` parameters: 16-bit weights and the
    fp32 optimizer states (14 B/parameter; gradients are not saved)."""
    return params * (WEIGHT_BYTES_PER_PARAM + OPTIMIZER_BYTES_PER_PARAM)


def optimal_interval_s(delta_s: float, mtbf_s: float) -> float:
    """Daly's second-order optimum checkpoint interval (s of work between checkpoints) for a
    blocking cost ``delta_s`` and a job mean time between failures ``mtbf_s``."""
    if not mtbf_s > 0 or not math.isfinite(mtbf_s):
        return math.inf
    if delta_s <= 0:
        return 0.0
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


def effective_fraction(tau_s: float, delta_s: float, recover_s: float, mtbf_s: float) -> float:
    """Share of wall time that advances training (0..1): ``tau_s`` s of work per checkpoint,
    each blocking ``delta_s`` s, ``recover_s`` s to restart after a failure (its lost work
    comes on top), failures every ``mtbf_s`` s on average (Daly 2006, eq. 13)."""
    if not math.isfinite(mtbf_s):
        return tau_s / (tau_s + delta_s) if tau_s > 0 else 1.0
    if not tau_s > 0:
        return 0.0
    m = mtbf_s
    expo = (tau_s + delta_s) / m + recover_s / m
    if expo > 700:  # the job essentially never completes an interval
        return 0.0
    return tau_s / (m * math.exp(recover_s / m) * math.expm1((tau_s + delta_s) / m))
