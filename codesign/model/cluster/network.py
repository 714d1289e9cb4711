"""The cluster's network equipment: scale-out switches, optics and NICs by topology and size,
and the switched scale-up fabric, as power (W) and capital cost (USD).

Example:
    >>> net = network(n_chips=16384, scaleout_gbps=400, topology="fat-tree",
    ...               oversubscription=1.0)
    >>> net.switches > 0 and net.optics > 0
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codesign.model import tech

PORT_GBPS = 800.0
"""Scale-out switch port speed (51.2 Tb/s switches: 64 x 800G)."""

SCALEUP_SWITCH_W_PER_CHIP = 40.0
"""Switched scale-up fabric (NVLink-switch class) power per accelerator: e.g. 4 NVSwitch
chips per 8 H100 at ~70-100 W each (estimate); 0 for direct-link tori."""

SCALEUP_SWITCH_USD_PER_CHIP = 1500.0
"""Switched scale-up fabric capex per accelerator (estimate)."""


def is_switched_scaleup(topology: str) -> bool:
    """True when the scale-up domain is a switched fabric (NVLink-switch class); the 2D/3D
    tori link chips directly."""
    return topology not in ("torus-2d", "torus-3d")


@dataclass(frozen=True)
class Network:
    """Scale-out equipment of a cluster (counts are whole devices)."""

    tiers: int
    switches: int
    optics: int
    nic_ports_400g: float
    power_w: float
    capex_usd: float


def network(n_chips: int, scaleout_gbps: float, topology: str, oversubscription: float,
            switched_scaleup: bool | None = None, facility: tech.Facility = tech.FACILITY,
            prices: tech.Prices = tech.PRICES) -> Network:
    """Switches, optics and NICs for ``n_chips`` with ``scaleout_gbps`` (Gbit/s) each.

    Fat-tree / rail-optimised: the fewest tiers of radix-R switches that reach every endpoint
    port (R/2 down, R/2 up per switch, the leaf taper set by ``oversubscription``); about
    ``(2 tiers - 1)`` switches per R/2 endpoint ports when non-blocking. Dragonfly: two tiers
    (groups of routers with global links). Every switch-to-switch link has two optics; each
    endpoint port one. Tori use the same scale-out network between their domains.
    ``switched_scaleup`` defaults to :func:`is_switched_scaleup` of the topology.
    """
    if switched_scaleup is None:
        switched_scaleup = is_switched_scaleup(topology)
    ports = max(0.0, n_chips * scaleout_gbps / PORT_GBPS)  # 800G-equivalent endpoint ports
    radix = facility.switch_radix
    if ports <= 0:
        return Network(0, 0, 0, 0.0, 0.0, 0.0)
    down = radix * oversubscription / (1.0 + oversubscription)  # leaf ports facing endpoints
    leaves = math.ceil(ports / down)
    if topology == "dragonfly":
        tiers = 1 if leaves == 1 else 2
    else:
        tiers = 1
        reach = down
        while reach < ports:
            tiers += 1
            reach *= radix / 2.0
    uplinks = leaves * (radix - down) if tiers > 1 else 0.0
    upper = 0 if tiers == 1 else math.ceil(uplinks * (2 * (tiers - 1) - 1) / radix)
    switches = leaves + upper
    links_between = uplinks * (tiers - 1)
    optics = math.ceil(ports + 2.0 * links_between)
    nic_ports = n_chips * scaleout_gbps / 400.0
    scaleup_w = SCALEUP_SWITCH_W_PER_CHIP * n_chips if switched_scaleup else 0.0
    power = (switches * facility.switch_w + optics * facility.optic_w_per_800g
             + nic_ports * facility.nic_w_per_400g + scaleup_w)
    capex = (switches * prices.switch_usd + optics * prices.optic_usd_per_800g
             + nic_ports * prices.nic_usd_per_400g
             + (SCALEUP_SWITCH_USD_PER_CHIP * n_chips if switched_scaleup else 0.0))
    return Network(tiers, switches, optics, nic_ports, power, capex)
