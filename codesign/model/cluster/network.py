"""The cluster's network equipment, as power (W) and capital cost (USD).

* :func:`network`: the NIC + scale-out path (fat-tree, rail-optimised, dragonfly) plus the
  switched scale-up fabric as a per-chip constant -- what :mod:`~codesign.model.perf` prices;
* :class:`Equipment`: switches, cables, transceivers and OCS ports of a fabric as it is built,
  summed with ``+``;
* :func:`scaleout_fabric`: the scale-out fat-tree as :class:`Equipment`, at any port speed;
* :func:`ethernet_scaleup`: scale-up domains as one- or two-tier Ethernet fabrics (Tomahawk
  class switches), copper inside a rack, optics on the links that leave it;
* :func:`shared_port_network`: chips whose Ethernet ports sit on the die (Maia 100 12x400GbE,
  Gaudi 3 24x200GbE), split between scale-up and scale-out, no NIC;
* :func:`torus_cabling`: direct-link tori (TPU v4/v5p style), copper inside a rack, optical
  fibre or optical circuit switches (OCS) between racks.

Power in W, money in USD, bandwidth in Gbit/s (one direction of a full-duplex port).

Example:
    >>> net = network(n_chips=16384, scaleout_gbps=400, topology="fat-tree",
    ...               oversubscription=1.0)
    >>> net.switches > 0 and net.optics > 0
    True
    >>> ethernet_scaleup(64, domain=32, up_gbps_per_chip=3200, chips_per_rack=32).optics
    0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

from codesign.model import tech

PORT_GBPS = 800.0
"""Scale-out switch port speed (51.2 Tb/s switches: 64 x 800G)."""

SCALEUP_SWITCH_W_PER_CHIP = 40.0
"""Switched scale-up fabric (NVLink-switch class) power per accelerator: e.g. 4 NVSwitch
chips per 8 H100 at ~70-100 W each (estimate); 0 for direct-link tori."""

SCALEUP_SWITCH_USD_PER_CHIP = 1500.0
"""Switched scale-up fabric capex per accelerator (estimate)."""

COPPER_W_PER_800G = 0.2
"""Passive direct-attach copper (DAC) cable, per link: 0.1 W per end (NVIDIA 'Copper DAC and
LACC Cables Overview', docs.nvidia.com/networking, 400G/100G PAM4 cables), scaled by port
speed like the optics. Passive DACs reach ~2-3 m, i.e. within a rack."""

COPPER_USD_PER_800G = 150.0
"""One 800G passive DAC cable (estimate: reseller list prices of 800G OSFP DACs are a few
hundred USD, a volume price ~100-200 USD; an order of magnitude below a pair of 800G
transceivers), scaled by port speed like the optics."""

OCS_W_PER_PORT = 0.8
"""Optical circuit switch power per port (estimate: a MEMS OCS draws power only to hold and
steer its mirrors and for its control electronics, ~100 W class for a 136-port unit like
Google's Palomar). Bound: Google's TPU v4 paper (Jouppi et al., ISCA 2023) puts OCSes and
the underlying optical components at < 3 % of system power; at 1.5 OCS ports per TPU v4 chip
this is ~1.2 W of a ~300 W chip + host share (0.4 %)."""

OCS_USD_PER_PORT = 250.0
"""Optical circuit switch capex per port (estimate from a public bound; no price is
published, Google builds its own Palomar OCS): OCSes + their optics are < 5 % of TPU v4
system cost (Jouppi et al., ISCA 2023). At 1.5 OCS ports per TPU v4 chip (6,144 ports for
4,096 chips) and a ~12 kUSD chip + host share, 5 % is ~600 USD per chip for both; if the
transceivers take about half, an OCS port is <= ~250 USD. (This model's list-price
transceivers alone exceed that share: Google's in-house optics are cheaper.)"""


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


@dataclass(frozen=True)
class Equipment:
    """Network equipment as built: electrical packet switches, copper (DAC) and optical
    links, transceivers (``optics``, two per optical link between boxes, one per scale-out
    endpoint port), optical-circuit-switch ports; their power (W) and capital cost (USD).
    ``a + b`` sums two, ``k * a`` repeats one ``k`` times."""

    switches: int = 0
    copper_links: int = 0
    optical_links: int = 0
    optics: int = 0
    ocs_ports: int = 0
    power_w: float = 0.0
    capex_usd: float = 0.0

    def __add__(self, other: Equipment) -> Equipment:
        if not isinstance(other, Equipment):
            return NotImplemented
        return Equipment(*(getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(Equipment)))

    def __mul__(self, k: int) -> Equipment:
        if not isinstance(k, int):
            return NotImplemented
        return Equipment(*(getattr(self, f.name) * k for f in fields(Equipment)))

    __rmul__ = __mul__


def _clos(ports: float, radix: int, oversubscription: float,
          topology: str) -> tuple[int, int, int, float]:
    """Fewest tiers of radix-``radix`` switches reaching ``ports`` endpoint ports:
    ``(tiers, leaves, switches, switch-to-switch links)``. ``ports`` > 0."""
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
    return tiers, leaves, leaves + upper, uplinks * (tiers - 1)


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
    tiers, _, switches, links_between = _clos(ports, radix, oversubscription, topology)
    optics = math.ceil(ports + 2.0 * links_between)
    nic_ports = n_chips * scaleout_gbps / 400.0
    scaleup_w = SCALEUP_SWITCH_W_PER_CHIP * n_chips if switched_scaleup else 0.0
    power = (switches * facility.switch_w + optics * facility.optic_w_per_800g
             + nic_ports * facility.nic_w_per_400g + scaleup_w)
    capex = (switches * prices.switch_usd + optics * prices.optic_usd_per_800g
             + nic_ports * prices.nic_usd_per_400g
             + (SCALEUP_SWITCH_USD_PER_CHIP * n_chips if switched_scaleup else 0.0))
    return Network(tiers, switches, optics, nic_ports, power, capex)


def switch_radix_at(port_gbps: float, facility: tech.Facility = tech.FACILITY) -> int:
    """Ports of the facility's switch at ``port_gbps``: its capacity (``switch_radix`` x
    800G = 51.2 Tb/s, Tomahawk 5 class: 64 x 800G, 128 x 400G or 256 x 200G, Broadcom
    BCM78900 announcement 2022) over the port speed."""
    if port_gbps <= 0:
        raise ValueError(f"port_gbps must be > 0, got {port_gbps}")
    return max(2, int(facility.switch_radix * PORT_GBPS // port_gbps))


def _priced(switches: int, copper: int, optical: int, optics: int, ocs_ports: int,
            port_gbps: float, switch_w: float, switch_usd: float, facility: tech.Facility,
            prices: tech.Prices) -> Equipment:
    """Equipment with its power and capex; cables and transceivers scale with the port speed
    from their 800G prices."""
    scale = port_gbps / PORT_GBPS
    power = (switches * switch_w + copper * COPPER_W_PER_800G * scale
             + optics * facility.optic_w_per_800g * scale + ocs_ports * OCS_W_PER_PORT)
    capex = (switches * switch_usd + copper * COPPER_USD_PER_800G * scale
             + optics * prices.optic_usd_per_800g * scale + ocs_ports * OCS_USD_PER_PORT)
    return Equipment(switches, copper, optical, optics, ocs_ports, power, capex)


def scaleout_fabric(n_chips: int, scaleout_gbps: float, topology: str, oversubscription: float,
                    port_gbps: float = PORT_GBPS, nics: bool = False,
                    facility: tech.Facility = tech.FACILITY,
                    prices: tech.Prices = tech.PRICES) -> Equipment:
    """The scale-out network of :func:`network` as :class:`Equipment`, built from
    ``port_gbps`` ports on the facility's switch (:func:`switch_radix_at`): the same tier
    counting, one transceiver per endpoint port, two per switch-to-switch link. NICs (at
    the facility's per-400G power and price) only with ``nics``; the scale-up fabric never
    (price it with :func:`ethernet_scaleup`, :func:`shared_port_network` or
    :func:`torus_cabling`). At 800G ports, ``nics=True`` gives :func:`network`'s figures less
    its per-chip scale-up constants."""
    ports = max(0.0, n_chips * scaleout_gbps / port_gbps)
    if ports <= 0:
        return Equipment()
    radix = switch_radix_at(port_gbps, facility)
    _, _, switches, between = _clos(ports, radix, oversubscription, topology)
    endpoint = math.ceil(ports)
    links = math.ceil(between)
    eq = _priced(switches, 0, endpoint + links, math.ceil(ports + 2.0 * between), 0, port_gbps,
                 facility.switch_w, prices.switch_usd, facility, prices)
    if not nics:
        return eq
    nic_ports = n_chips * scaleout_gbps / 400.0
    return eq + Equipment(power_w=nic_ports * facility.nic_w_per_400g,
                          capex_usd=nic_ports * prices.nic_usd_per_400g)


def _rack_sizes(chips: int, chips_per_rack: int) -> list[int]:
    """Chips of a domain in each rack it occupies: domains are placed rack-aligned (a domain
    no larger than a rack sits in one rack; a larger one fills whole racks and a rest)."""
    if chips <= chips_per_rack:
        return [chips]
    full, rest = divmod(chips, chips_per_rack)
    return [chips_per_rack] * full + ([rest] if rest else [])


def _per_domain(n_chips: int, domain: int, one: Callable[[int], Equipment]) -> Equipment:
    """``one(chips)`` for every full domain of ``domain`` chips and for the rest."""
    domain = max(1, min(domain, n_chips))
    full, rest = divmod(n_chips, domain)
    total = full * one(domain)
    return total + one(rest) if rest > 1 else total


def _check(n_chips: int, chips_per_rack: int) -> None:
    if n_chips < 0:
        raise ValueError(f"n_chips must be >= 0, got {n_chips}")
    if chips_per_rack < 1:
        raise ValueError(f"chips_per_rack must be >= 1, got {chips_per_rack}")


def ethernet_scaleup(n_chips: int, domain: int, up_gbps_per_chip: float, chips_per_rack: int,
                     switch_radix: int | None = None, port_gbps: float = PORT_GBPS,
                     switch_w: float | None = None, switch_usd: float | None = None,
                     facility: tech.Facility = tech.FACILITY,
                     prices: tech.Prices = tech.PRICES) -> Equipment:
    """Scale-up domains of ``domain`` chips, each a non-blocking Ethernet fabric (the
    Broadcom / OpenAI rack direction). Each chip has ``ceil(up_gbps_per_chip / port_gbps)``
    up-link ports. A domain no larger than the switch radix is one tier of parallel planes
    (each switch takes ``radix // domain`` ports of every chip, as NVSwitch trays do); a
    larger one a two- (or more-) tier Clos with leaves in the racks of their chips.

    Cabling: links inside a rack are copper (DAC). A domain over ``k`` racks spreads its top
    tier evenly over them: ``1/k`` of the links into it stay in the rack, the rest are
    optical with two transceivers each. Switches default to the facility's 51.2 Tb/s box
    (radix :func:`switch_radix_at` ``port_gbps``, ``facility.switch_w``,
    ``prices.switch_usd``); cables and transceivers are priced per port speed from the 800G
    figures (``facility.optic_w_per_800g``, ``prices.optic_usd_per_800g``)."""
    _check(n_chips, chips_per_rack)
    radix = switch_radix if switch_radix is not None else switch_radix_at(port_gbps, facility)
    sw_w = facility.switch_w if switch_w is None else switch_w
    sw_usd = prices.switch_usd if switch_usd is None else switch_usd
    per_chip = math.ceil(up_gbps_per_chip / port_gbps - 1e-9) if up_gbps_per_chip > 0 else 0
    if n_chips <= 1 or domain <= 1 or per_chip == 0:
        return Equipment()

    def one(chips: int) -> Equipment:
        if chips <= 1:
            return Equipment()
        ports = chips * per_chip
        racks = len(_rack_sizes(chips, chips_per_rack))
        if chips <= radix:  # one tier: planes, every chip on every switch
            switches = math.ceil(per_chip / min(per_chip, radix // chips))
            copper = math.ceil(ports / racks)
            optical = ports - copper
        else:  # leaves in the racks (chip links copper), upper tiers spread over the racks
            _, _, switches, between = _clos(ports, radix, 1.0, "fat-tree")
            upper = math.ceil(between)
            optical = upper - math.ceil(upper / racks)
            copper = ports + upper - optical
        return _priced(switches, copper, optical, 2 * optical, 0, port_gbps, sw_w, sw_usd,
                       facility, prices)

    return _per_domain(n_chips, domain, one)


def direct_scaleup(n_chips: int, domain: int, up_ports: int, port_gbps: float,
                   chips_per_rack: int, facility: tech.Facility = tech.FACILITY,
                   prices: tech.Prices = tech.PRICES) -> Equipment:
    """Switchless all-to-all scale-up (Gaudi 3's 21 ports to 7 peers, 3 each): every pair of
    the domain's chips has ``up_ports // (domain - 1)`` point-to-point links; copper inside
    a rack, optical (two transceivers) between racks. ``up_ports < domain - 1`` cannot reach
    every peer directly: ValueError."""
    _check(n_chips, chips_per_rack)
    domain = max(1, min(domain, n_chips))
    if domain <= 1 or up_ports <= 0:
        return Equipment()
    per_pair = up_ports // (domain - 1)
    if per_pair < 1:
        raise ValueError(f"direct all-to-all over {domain} chips needs >= {domain - 1} "
                         f"scale-up ports per chip, got {up_ports}")

    def one(chips: int) -> Equipment:
        pairs = chips * (chips - 1) // 2
        inside = sum(s * (s - 1) // 2 for s in _rack_sizes(chips, chips_per_rack))
        optical = per_pair * (pairs - inside)
        return _priced(0, per_pair * inside, optical, 2 * optical, 0, port_gbps, 0.0, 0.0,
                       facility, prices)

    return _per_domain(n_chips, domain, one)


def shared_port_network(n_chips: int, domain: int, shared_ports: int, port_gbps: float,
                        scaleout_ports: int, chips_per_rack: int, topology: str,
                        oversubscription: float, scaleup: str = "ethernet",
                        facility: tech.Facility = tech.FACILITY,
                        prices: tech.Prices = tech.PRICES) -> Equipment:
    """Chips whose ``shared_ports`` Ethernet ports of ``port_gbps`` are on the die (Maia 100:
    12 x 400GbE; Gaudi 3: 24 x 200GbE): no NIC. ``scaleout_ports`` of them per chip go to the
    scale-out fat-tree (:func:`scaleout_fabric` at ``port_gbps``: switches and one transceiver
    per port, no NIC power or price); the other ``shared_ports - scaleout_ports`` form the
    scale-up domain of ``domain`` chips: ``scaleup="ethernet"`` switched
    (:func:`ethernet_scaleup`), ``"direct"`` point-to-point all-to-all
    (:func:`direct_scaleup`). Every switch is counted once, in the fabric it belongs to."""
    up_ports = shared_ports - scaleout_ports
    if scaleout_ports < 0 or up_ports < 0:
        raise ValueError(f"scaleout_ports must be in [0, {shared_ports}], got {scaleout_ports}")
    if scaleup == "ethernet":
        up = ethernet_scaleup(n_chips, domain, up_ports * port_gbps, chips_per_rack,
                              port_gbps=port_gbps, facility=facility, prices=prices)
    elif scaleup == "direct":
        up = direct_scaleup(n_chips, domain, up_ports, port_gbps, chips_per_rack,
                            facility, prices)
    else:
        raise ValueError(f"scaleup must be 'ethernet' or 'direct', got {scaleup!r}")
    out = scaleout_fabric(n_chips, scaleout_ports * port_gbps, topology, oversubscription,
                          port_gbps=port_gbps, nics=False, facility=facility, prices=prices)
    return up + out


def torus_cabling(n_chips: int, links_per_chip: int, link_gbps: float, chips_per_rack: int,
                  ocs: bool, dims: int | None = None, facility: tech.Facility = tech.FACILITY,
                  prices: tech.Prices = tech.PRICES) -> Equipment:
    """Cables of a ``dims``-dimensional torus (default ``links_per_chip // 2``; TPU v4/v5p:
    6 links, 3D) of ``n_chips``, each link ``link_gbps`` per direction; no packet switch.

    A rack holds a cube of ``chips_per_rack`` chips (TPU v4: 4x4x4 = 64); links inside it are
    copper. Each dimension the torus spans across racks has two faces of
    ``chips_per_rack ** ((dims-1)/dims)`` chips leaving the rack, each chip with
    ``links_per_chip / (2 dims)`` links per face; those links are optical, two transceivers
    each. Without ``ocs`` the racks tile the torus as a 2x2x.. grid first, so ``r`` racks span
    ``min(dims, floor(log2 r))`` dimensions and the others wrap inside the rack (direct
    fibre). With ``ocs`` every face of every rack goes to optical circuit switches, one OCS
    port per link end (TPU v4: 64 racks of 4,096 chips and 48 OCSes, Jouppi et al. ISCA 2023
    via HPCwire 2023-04-10; 6 faces x 16 = 96 links per cube, 6,144 OCS ports in all, derived).
    OCS ports are priced per port (:data:`OCS_W_PER_PORT`, :data:`OCS_USD_PER_PORT`), not
    counted as ``switches``. One rack: all copper."""
    _check(n_chips, chips_per_rack)
    if links_per_chip < 0 or link_gbps < 0:
        raise ValueError("links_per_chip and link_gbps must be >= 0")
    dims = max(1, dims if dims is not None else links_per_chip // 2)
    links = n_chips * links_per_chip // 2
    racks = math.ceil(n_chips / chips_per_rack) if n_chips else 0
    optical = 0
    if racks > 1 and links:
        spans = dims if ocs else min(dims, int(math.log2(racks)))
        rack = min(chips_per_rack, n_chips)
        ends = (n_chips / rack) * spans * links_per_chip / dims * rack ** ((dims - 1) / dims)
        optical = min(links, round(ends / 2.0))
    return _priced(0, links - optical, optical, 2 * optical, 2 * optical if ocs else 0,
                   link_gbps, 0.0, 0.0, facility, prices)
