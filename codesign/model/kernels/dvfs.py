"""Power limit (DVFS): a chip whose workload would draw more than its TDP runs at a lower
clock. :func:`at_clock` scales a packed chip to a clock; :func:`next_clock` drives the
bisection both kernels use (the mapping is re-evaluated on the slower chip until the highest
clock that fits is found)."""

from __future__ import annotations

from numba import njit

from codesign.model.kernels import layout as L

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
    """One step of the clock search for a chip over its TDP.

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
