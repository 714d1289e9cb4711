"""Host CPUs and the platform each catalog chip is built into (package data), and the host
power and price model.

``hosts.csv`` lists server CPUs (:class:`HostCpu`); ``platforms.toml`` describes, per catalog
chip id, the system that chip is sold or deployed in (:class:`Platform`): its host CPUs and
DRAM, scale-up fabric and domain, rack, scale-out topology and NIC or shared on-chip Ethernet
ports. Every figure carries its source in the data files; "estimate" marks the rest.

The host model charges each accelerator its share of the host it sits in::

    host W per chip   = (cpus x TDP + dram_gb x DRAM_W_PER_GB + HOST_BOARD_W) / chips
    host USD per chip = (cpus x price + dram_gb x DRAM_USD_PER_GB + HOST_BOARD_USD) / chips

Example:
    >>> p = platform_of("h100-sxm")
    >>> p.host, p.cpus_per_host, p.chips_per_host
    ('xeon-8480', 2, 8)
    >>> round(host_w_per_chip(get_host(p.host), p.cpus_per_host, p.chips_per_host,
    ...                       p.host_dram_gb), 1)
    150.6
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

from codesign.model.catalog import chip_ids
from codesign.model.specs import TOPOLOGIES

DRAM_W_PER_GB = 0.1
"""Server DDR5 power per GB under load, W/GB (estimate). ServeTheHome's EPYC Genoa review
measured "well over 100 W" for the memory of a 24-DIMM DDR5 server; with 32-64 GB RDIMMs
(768-1536 GB) that is ~0.07-0.14 W/GB. 0.1 W/GB puts DGX H100's 2 TB at ~200 W. LPDDR5X
(Grace) draws several times less per GB, and Grace's 250 W in hosts.csv already includes it."""

DRAM_USD_PER_GB = 5.0
"""Server DDR5 RDIMM price per GB, USD (estimate). Volume RDIMM prices have ranged ~3-6 USD/GB
(DDR4 ECC was ~4.7 USD/GB in 2016, info.grcooling.com); 2025-2026 retail spiked far higher
(a 16 x 256 GB DDR5-6400 RDIMM kit at USD 76,999 = ~19 USD/GB, hi-tech.ua), so 5 is a
mid-cycle volume price, not a spot price."""

HOST_BOARD_W = 300.0
"""Host power besides CPUs and DRAM, W per host (estimate): BMC ~10 W, 2-10 NVMe drives at
~10-15 W (DGX H100/B200 carry 2 M.2 + 8 U.2), PCIe Gen5 switches ~25-50 W each (2-4 per
8-GPU host), and the CPU/DRAM share of fan power ~100 W. NICs, NVSwitches and the GPUs' own
cooling are counted elsewhere."""

HOST_BOARD_USD = 5000.0
"""Host price besides CPUs and DRAM, USD per host (estimate): motherboard and chassis share
~2,000-3,000 USD, power supplies, and NVMe (DGX B200: 2 x 1.92 TB + 8 x 3.84 TB, roughly
1,500-3,000 USD at 50-100 USD/TB)."""

ACCEL_LINK_GBS = {"pcie4": 32.0, "pcie5": 64.0, "nvlink-c2c": None}
"""Host-to-accelerator link kinds and their GB/s per direction where fixed: PCIe 4.0 x16 =
32 GB/s, PCIe 5.0 x16 = 64 GB/s (16 lanes x 32/16 GT/s, 128b/130b coding, rounded as vendors
quote it); NVLink-C2C is per part (Grace: 450 GB/s per direction, hosts.csv)."""

SCALEUPS = ("switched", "ethernet", "torus-3d", "torus-2d", "direct")
"""Scale-up fabrics: switched (NVLink-switch class), ethernet (Ethernet switches), torus-3d /
torus-2d (direct links between neighbours), direct (point-to-point all-to-all without a
switch, e.g. 8-GPU Infinity Fabric or Gaudi 3 within 8)."""

COOLINGS = ("air", "liquid")


@dataclass(frozen=True)
class HostCpu:
    """One server CPU of hosts.csv. ``tdp_w`` W, ``price_usd`` USD (list price, or an estimate
    for parts not sold separately), ``memory_bw_gbs`` GB/s of its DRAM, ``accel_link_gbs`` GB/s
    per direction of its link to each accelerator (``accel_link``: pcie4, pcie5, nvlink-c2c)."""

    id: str
    name: str
    vendor: str
    cores: int
    tdp_w: float
    price_usd: float
    memory_bw_gbs: float
    accel_link: str
    accel_link_gbs: float
    source: str


@dataclass(frozen=True)
class Platform:
    """The system catalog chip ``chip_id`` is built into, as sold or deployed.

    ``host``: a hosts.csv id; ``cpus_per_host`` CPUs and ``host_dram_gb`` GB of DRAM serve
    ``chips_per_host`` accelerators. ``scaleup`` (one of :data:`SCALEUPS`) joins
    ``scaleup_domain`` chips; ``chips_per_rack`` chips draw ``rack_kw`` kW per rack; ``topology``
    (one of specs.TOPOLOGIES) is the scale-out network. ``nic_gbps``: Gbit/s of NIC per chip (0
    where the chip's own Ethernet ports serve scale-out); ``shared_ports`` on-chip Ethernet
    ports of ``port_gbps`` Gbit/s shared by scale-up and scale-out, ``scaleout_ports`` of them
    facing scale-out. ``ocs``: optical circuit switches between torus blocks; ``cooling``: air
    or liquid; ``source``: citations and estimates. ``host_link_gbs`` (optional): GB/s per
    direction of each chip's own link to its host where narrower than the host CPU's
    (Maia 100: PCIe 5.0 x8); 0 = the CPU's (hosts.csv ``accel_link_gbs``)."""

    chip_id: str
    host: str
    cpus_per_host: int
    chips_per_host: int
    host_dram_gb: float
    scaleup: str
    scaleup_domain: int
    chips_per_rack: int
    topology: str
    nic_gbps: float
    shared_ports: int
    port_gbps: float
    scaleout_ports: int
    ocs: bool
    cooling: str
    rack_kw: float
    source: str
    host_link_gbs: float = 0.0


_OPTIONAL_KEYS = frozenset({"host_link_gbs"})
_HOST_TYPES = {f.name: f.type for f in fields(HostCpu)}
_PLATFORM_KEYS = [f.name for f in fields(Platform) if f.name != "chip_id"]
_PLATFORM_TYPES = {f.name: f.type for f in fields(Platform)}


_PACKAGE = "codesign.model.catalog"


def _read_text(name: str) -> str:
    return resources.files(_PACKAGE).joinpath(name).read_text(encoding="utf-8")


@cache
def host_cpus() -> dict[str, HostCpu]:
    """All host CPUs of hosts.csv by id, in file order."""
    out: dict[str, HostCpu] = {}
    for row in csv.DictReader(_read_text("hosts.csv").splitlines()):
        if set(row) != set(_HOST_TYPES):  # package data: a bug, not user input
            raise RuntimeError(f"hosts.csv columns {sorted(row)} != {sorted(_HOST_TYPES)}")
        values: dict[str, object] = {}
        for key, kind in _HOST_TYPES.items():
            text = (row[key] or "").strip()
            try:
                values[key] = int(text) if kind == "int" else float(text) if kind == "float" \
                    else text
            except ValueError:
                raise RuntimeError(f"hosts.csv {row['id']!r}: {key}={text!r} is not a "
                                   f"{kind}") from None
        host = HostCpu(**values)  # type: ignore[arg-type]
        if host.id in out:
            raise RuntimeError(f"hosts.csv: duplicate host id {host.id!r}")
        out[host.id] = host
    return out


def get_host(host_id: str) -> HostCpu:
    """The host CPU ``host_id``; raises KeyError naming the known ids."""
    try:
        return host_cpus()[host_id]
    except KeyError:
        raise KeyError(f"unknown host {host_id!r}; known: {', '.join(host_cpus())}") from None


def _check_host(host: HostCpu) -> None:
    def bad(key: str, why: str) -> RuntimeError:
        return RuntimeError(f"hosts.csv {host.id!r}: {key} {why}")

    for key in ("cores", "tdp_w", "price_usd", "memory_bw_gbs", "accel_link_gbs"):
        if not getattr(host, key) > 0:
            raise bad(key, f"must be positive, got {getattr(host, key)!r}")
    for key in ("id", "name", "vendor", "source"):
        if not getattr(host, key):
            raise bad(key, "is empty")
    if host.accel_link not in ACCEL_LINK_GBS:
        raise bad("accel_link", f"{host.accel_link!r} not one of {sorted(ACCEL_LINK_GBS)}")
    fixed = ACCEL_LINK_GBS[host.accel_link]
    if fixed is not None and host.accel_link_gbs != fixed:
        raise bad("accel_link_gbs", f"{host.accel_link_gbs} != {fixed} of {host.accel_link}")


def _typed(chip_id: str, key: str, value: object) -> object:
    """``value`` of platform key ``key`` as its field type, else RuntimeError."""
    kind = _PLATFORM_TYPES[key]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, str)
    if not ok:
        raise RuntimeError(f"platform {chip_id!r}: {key}={value!r} is not a {kind}")
    return value


def validate_platform(chip_id: str, table: Mapping[str, object]) -> Platform:
    """The :class:`Platform` of ``chip_id`` built from one platforms.toml table, checked:
    every key present and typed, no unknown key, the host in hosts.csv, the chip in chips.csv,
    counts positive, names from their allowed sets, ``scaleout_ports <= shared_ports`` and a
    scale-out path (NIC or scale-out ports). Raises RuntimeError naming the chip and the key
    (platforms.toml is package data: a bad table is a bug, not user input)."""

    def bad(key: str, why: str) -> RuntimeError:
        return RuntimeError(f"platform {chip_id!r}: {key} {why}")

    unknown = sorted(set(table) - set(_PLATFORM_KEYS))
    if unknown:
        raise bad(unknown[0], f"is not a platform key (known: {', '.join(_PLATFORM_KEYS)})")
    missing = [k for k in _PLATFORM_KEYS if k not in table and k not in _OPTIONAL_KEYS]
    if missing:
        raise bad(missing[0], "is missing")
    p = Platform(chip_id=chip_id,
                 **{k: _typed(chip_id, k, table[k]) for k in _PLATFORM_KEYS  # type: ignore
                    if k in table})
    if chip_id not in chip_ids():
        raise bad("chip_id", "is not a chip of chips.csv")
    if p.host not in host_cpus():
        raise bad("host", f"{p.host!r} is not in hosts.csv ({', '.join(host_cpus())})")
    for key in ("cpus_per_host", "chips_per_host", "scaleup_domain", "chips_per_rack",
                "host_dram_gb", "rack_kw"):
        if not getattr(p, key) > 0:
            raise bad(key, f"must be positive, got {getattr(p, key)!r}")
    for key in ("nic_gbps", "shared_ports", "port_gbps", "scaleout_ports", "host_link_gbs"):
        if getattr(p, key) < 0:
            raise bad(key, f"must be >= 0, got {getattr(p, key)!r}")
    for key, allowed in (("scaleup", SCALEUPS), ("topology", TOPOLOGIES),
                         ("cooling", COOLINGS)):
        if getattr(p, key) not in allowed:
            raise bad(key, f"{getattr(p, key)!r} not one of {', '.join(allowed)}")
    if p.chips_per_rack % p.chips_per_host:
        raise bad("chips_per_rack", f"{p.chips_per_rack} is not a multiple of chips_per_host "
                                    f"{p.chips_per_host}")
    if p.scaleout_ports > p.shared_ports:
        raise bad("scaleout_ports", f"{p.scaleout_ports} > shared_ports {p.shared_ports}")
    if (p.shared_ports > 0) != (p.port_gbps > 0):
        raise bad("port_gbps", f"{p.port_gbps} with shared_ports {p.shared_ports}: both or "
                               "neither must be positive")
    if p.nic_gbps == 0 and p.scaleout_ports == 0:
        raise bad("nic_gbps", "is 0 and no shared port faces scale-out: no scale-out path")
    if p.ocs and not p.scaleup.startswith("torus"):
        raise bad("ocs", f"optical circuit switches join torus blocks, scaleup is {p.scaleup!r}")
    if not p.source.strip():
        raise bad("source", "is empty")
    return p


@cache
def _platform_tables() -> dict[str, dict]:
    return tomllib.loads(_read_text("platforms.toml"))


@cache
def platforms() -> dict[str, Platform]:
    """All platforms of platforms.toml by chip id, validated (:func:`validate_platform`)."""
    return {chip: validate_platform(chip, table) for chip, table in _platform_tables().items()}


def platform_of(chip_id: str) -> Platform | None:
    """The platform catalog chip ``chip_id`` is built into, or None where none is described."""
    return platforms().get(chip_id)


def check_platforms() -> None:
    """Check hosts.csv and platforms.toml: every host row positive and its link kind known,
    every platform table valid (:func:`validate_platform`). Raises RuntimeError naming the
    host or chip and the key."""
    for host in host_cpus().values():
        _check_host(host)
    for chip, table in _platform_tables().items():
        validate_platform(chip, table)


def _host_share(per_cpu: float, per_gb: float, per_host: float, cpus_per_host: int,
                chips_per_host: int, dram_gb: float) -> float:
    if cpus_per_host < 1 or chips_per_host < 1 or dram_gb < 0:
        raise ValueError(f"need cpus_per_host >= 1, chips_per_host >= 1, dram_gb >= 0; got "
                         f"{cpus_per_host}, {chips_per_host}, {dram_gb}")
    return (cpus_per_host * per_cpu + dram_gb * per_gb + per_host) / chips_per_host


TDP_INCLUDES_MEMORY = frozenset({"grace"})
"""Host CPUs whose TDP already counts their memory: NVIDIA's 500 W for the Grace CPU
Superchip includes its LPDDR5X (hosts.csv), so no DRAM power is added on top."""


def host_w_per_chip(host: HostCpu, cpus_per_host: int, chips_per_host: int,
                    dram_gb: float) -> float:
    """Host power charged to each accelerator, W: (``cpus_per_host`` x ``host.tdp_w`` W +
    ``dram_gb`` GB x :data:`DRAM_W_PER_GB` + :data:`HOST_BOARD_W`) / ``chips_per_host``.
    At TDP: an upper bound of what the host draws."""
    dram_w = 0.0 if host.id in TDP_INCLUDES_MEMORY else DRAM_W_PER_GB
    return _host_share(host.tdp_w, dram_w, HOST_BOARD_W, cpus_per_host, chips_per_host,
                       dram_gb)


def host_usd_per_chip(host: HostCpu, cpus_per_host: int, chips_per_host: int,
                      dram_gb: float) -> float:
    """Host price charged to each accelerator, USD: (``cpus_per_host`` x ``host.price_usd`` +
    ``dram_gb`` GB x :data:`DRAM_USD_PER_GB` + :data:`HOST_BOARD_USD`) / ``chips_per_host``."""
    return _host_share(host.price_usd, DRAM_USD_PER_GB, HOST_BOARD_USD, cpus_per_host,
                       chips_per_host, dram_gb)


def host_memory_per_chip(host: HostCpu, cpus_per_host: int, chips_per_host: int,
                         dram_gb: float, link_gbs: float = 0.0) -> tuple[float, float, float]:
    """Host memory as each accelerator sees it: ``(link GB/s per direction, DRAM GB, DRAM
    GB/s)``. The DRAM (``dram_gb`` GB per host) and its bandwidth (``cpus_per_host`` x the
    CPU's ``memory_bw_gbs``) are shared by ``chips_per_host`` chips; the link is each chip's
    own PCIe link (``link_gbs`` where the chip's is narrower, else the CPU's), or the CPU's
    NVLink-C2C shared by the chips attached to it; it moves no faster than the chip's share
    of DRAM bandwidth."""
    if cpus_per_host < 1 or chips_per_host < 1 or dram_gb < 0 or link_gbs < 0:
        raise ValueError(f"need cpus_per_host >= 1, chips_per_host >= 1, dram_gb >= 0, "
                         f"link_gbs >= 0; got {cpus_per_host}, {chips_per_host}, {dram_gb}, "
                         f"{link_gbs}")
    dram_bw = host.memory_bw_gbs * cpus_per_host / chips_per_host
    link = link_gbs or host.accel_link_gbs
    if host.accel_link == "nvlink-c2c" and not link_gbs:
        link = link * cpus_per_host / chips_per_host
    return min(link, dram_bw), dram_gb / chips_per_host, dram_bw
