"""What a rack's cooling removes: the most power a rack may draw and the most a single chip may
dissipate, for air-cooled racks and for direct liquid cooling (cold plates on the chips, a
coolant distribution unit per rack or row).

A cluster that states no cooling (``ClusterSpec.cooling`` None, the design parameter
``cooling = "unstated"``) has no limit: every design fits, as before cooling existed.

What cooling does not change here, and why:

* the PUE: ``ClusterSpec.pue`` is always a number (default 1.2), so the model cannot tell a
  stated PUE from the default, and published PUE gains of liquid cooling depend on the
  site's climate and heat rejection (chillers, dry coolers) more than on the rack; an
  experiment states the PUE of its site;
* the capital cost: published figures disagree in sign (a chassis-immersion study finds the
  capex of liquid and air data centres equal at like density and 10-14 % lower for liquid at
  20-40 kW racks, iceotope.com "capital cost analysis of immersive liquid-cooled vs
  air-cooled large data centers"; colocation operators quote 20-40 % premiums for liquid-cooled
  space, datacentres.com cooling technologies guide), so no cold-plate or CDU cost is added:
  ``Prices.facility_usd_per_w`` prices the building either way.

Example:
    >>> check("air", rack_kw=117.8, chip_tdp_w=1200.0).ok
    False
    >>> check("liquid", rack_kw=117.8, chip_tdp_w=1200.0).ok
    True
    >>> check(None, rack_kw=1e6, chip_tdp_w=1e5).ok
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codesign.model.catalog.platforms import COOLINGS

RACK_LIMIT_KW: dict[str, float] = {"air": 50.0, "liquid": 250.0}
"""The most power one rack may draw under each cooling, kW.

* ``air`` 50 (estimate within published ranges): air handlers in the row and rear-door heat
  exchangers carry a rack's heat to chilled water; rear doors are rated 20-80 kW per door
  (crac.services "in-row vs perimeter CRAC for high-density racks"; HPE's Motivair
  liquid-cooled door families 14-35, 35-55 and 55-75 kW, per coolnetpower.com "how much heat
  can a rear door heat exchanger remove"), and operators move to liquid for racks above
  40-60 kW (heathertechnologies.com "cooling 60 kW GPU racks"). 50 kW is the middle of that
  hand-over; every air-cooled platform of the catalog as built draws less in this model
  (DGX H100 racks of 4 systems ~32 kW, TPU v6e ~43 kW).
* ``liquid`` 250 (estimate at the top of what is shipped or announced): GB200 NVL72 draws
  ~120-132 kW per rack (introl.com "GB200 NVL72 deployment"; platforms.toml gb200), GB300
  NVL72 ~142 kW at peak (manishklach.github.io "Blackwell GB300 NVL72 cooling stack"), AMD
  offers direct-liquid-cooled racks of 128 MI355X at 1.4 kW each (theregister.com
  2025-06-12), ~210 kW in this model, and some liquid-cooled deployments run above 250 kW
  per rack (panic-nb.com "what CDU cooling is", citing Aulank Pump 2026). A site built for
  GB200-class racks only states its own ``rack_power_kw`` constraint (as
  ``experiments/ethernet_rack_2027.toml`` does, 140 kW).
"""

CHIP_LIMIT_W: dict[str, float | None] = {"air": 1000.0, "liquid": None}
"""The most power one accelerator may dissipate under each cooling, W (None: no limit).

* ``air`` 1,000: the hottest air-cooled accelerators shipped are rated 1,000 W and their
  faster siblings need liquid: AMD MI350X, air-cooled, 1,000 W board power vs MI355X, liquid,
  1,400 W (theregister.com 2025-06-12 "AMD's MI355X is a 1.4 kW liquid-cooled monster";
  hyper.ai on AMD Advancing AI 2025); NVIDIA's B200 at 1,000 W in 8-GPU HGX/DGX B200
  systems (Lenovo's "HGX B200 180GB 1000W GPU" spec, cited by coolnetpower.com "air cooling
  limits for high-density AI racks"; DGX B200 air-cooled, platforms.toml b200) vs GB200's
  1,200 W per GPU on cold plates (platforms.toml gb200).
* ``liquid``: no limit is published; cold plates carry the 1,400 W MI355X today.
"""


@dataclass(frozen=True)
class CoolingCheck:
    """Whether a rack and its chips fit what the cooling removes.

    ``rack_limit_kw`` and ``chip_limit_w`` are NaN where there is no limit (no cooling
    stated, or no chip limit); ``reason`` names each limit exceeded ("" when ``ok``)."""

    cooling: str | None
    rack_kw: float
    rack_limit_kw: float
    chip_tdp_w: float
    chip_limit_w: float
    ok: bool
    reason: str


def rack_limit_kw(cooling: str | None) -> float:
    """The rack power limit of ``cooling``, kW (NaN: no cooling stated, no limit)."""
    return RACK_LIMIT_KW[cooling] if cooling is not None else math.nan


def chip_limit_w(cooling: str | None) -> float:
    """The chip TDP limit of ``cooling``, W (NaN: no limit)."""
    limit = CHIP_LIMIT_W[cooling] if cooling is not None else None
    return math.nan if limit is None else limit


def check(cooling: str | None, rack_kw: float, chip_tdp_w: float | None) -> CoolingCheck:
    """Check a rack of ``rack_kw`` kW (chips at TDP with their host and network share) whose
    chips are rated ``chip_tdp_w`` W against ``cooling`` (``"air"``, ``"liquid"`` or None =
    not stated: always fits). A stated cooling with an unknown rack power or TDP does not
    fit (the reason says so). Raises ValueError for another cooling."""
    if cooling is not None and cooling not in COOLINGS:
        raise ValueError(f"cooling {cooling!r} not one of {', '.join(COOLINGS)}")
    tdp = math.nan if chip_tdp_w is None else float(chip_tdp_w)
    rack_lim, chip_lim = rack_limit_kw(cooling), chip_limit_w(cooling)
    why = []
    if cooling is not None:
        if not math.isfinite(rack_kw) or not math.isfinite(tdp):
            why.append("rack power unknown (the chip has no TDP)")
        else:
            if rack_kw > rack_lim:
                why.append(f"rack {rack_kw:.1f} kW > {rack_lim:g} kW that {cooling} cooling "
                           "removes")
            if not math.isnan(chip_lim) and tdp > chip_lim:
                why.append(f"chip TDP {tdp:.0f} W > {chip_lim:g} W that {cooling} cooling "
                           "removes")
    return CoolingCheck(cooling=cooling, rack_kw=rack_kw, rack_limit_kw=rack_lim,
                        chip_tdp_w=tdp, chip_limit_w=chip_lim, ok=not why,
                        reason="; ".join(why))
