"""Fit the two energy constants of codesign/power.py to published TDPs (chips.csv).

    python scripts/calibrate_power.py

Each catalog chip with a TDP and enough resources (node, bf16 peak, units, HBM) gets a
predicted sustained-peak power (power.tdp_w_from_chip); the grid search minimises the mean
absolute log error over them. Copy the printed constants into power.py.
"""

from __future__ import annotations

import math

import numpy as np

from codesign import catalog, power


def main() -> None:
    chips = [c for c in catalog.chips() if c.tdp_w and power.tdp_w_from_chip(c) is not None]
    best = None
    for mac in np.linspace(0.0, 1.0, 41):
        for operand in np.linspace(0.0, 2.0, 81):
            power.E_MAC_N7_PJ, power.E_OPERAND_N7_PJ = float(mac), float(operand)
            err = [abs(math.log(power.tdp_w_from_chip(c) / c.tdp_w)) for c in chips]
            loss = float(np.mean(err))
            if best is None or loss < best[0]:
                best = (loss, float(mac), float(operand))
    loss, mac, operand = best
    power.E_MAC_N7_PJ, power.E_OPERAND_N7_PJ = mac, operand
    print(f"E_MAC_N7_PJ = {mac:.3f}\nE_OPERAND_N7_PJ = {operand:.3f}  (mean |log err| {loss:.3f})")
    for c in chips:
        pred = power.tdp_w_from_chip(c)
        print(f"  {c.id:16s} published {c.tdp_w:6.0f} W  predicted {pred:6.0f} W  "
              f"{100 * (pred - c.tdp_w) / c.tdp_w:+.0f} %")


if __name__ == "__main__":
    main()
