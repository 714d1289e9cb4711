"""A cluster as it is built: which network equipment a chip and its platform need, how a chip's
shared Ethernet ports split between scale-up and scale-out, and what its host costs.

* NVLink-class switched scale-up with NICs (``scaleup_fabric`` None or ``"switched"`` on a
  fat-tree, rail or dragonfly): :func:`codesign.model.cluster.network.network`, as before;
* a torus (``torus-2d``/``torus-3d``): the same scale-out network plus the torus's own cables,
  copper in a rack and optical between racks, through optical circuit switches with ``ocs``
  (:func:`~codesign.model.cluster.network.torus_cabling`);
* Ethernet scale-up (``"ethernet"``: the direction of Broadcom-built racks) or point-to-point
  all-to-all (``"direct"``: 8-GPU Infinity Fabric, Gaudi 3) beside the NIC scale-out;
* chips whose on-die Ethernet ports serve both (Maia 100, Gaudi 3, designs with
  ``shared_ports``): no NIC; ``scaleout_ports`` of the ports go to the scale-out fabric, the
  rest form the scale-up domain (:func:`port_split`), every switch counted once.

Example:
    >>> from codesign.model.catalog import get_chip
    >>> from dataclasses import replace
    >>> maia = replace(get_chip("maia100"), shared_ports=12, port_gbps=400.0)
    >>> c = ClusterSpec(n_chips=1024, scaleup_fabric="ethernet", scaleout_ports=4,
    ...                 chips_per_rack=32)
    >>> port_split(maia, c).scaleout_gbps
    1600.0
"""

from __future__ import annotations

from dataclasses import replace

from codesign.model.catalog import platforms as plat
from codesign.model.cluster import network
from codesign.model.specs import ChipSpec, ClusterSpec

DEFAULT_CHIPS_PER_RACK = 8
"""Chips per rack when a cluster does not say (an 8-accelerator server per rack: the air-cooled
HGX-class layout; estimate)."""


def scaleout_ports(chip: ChipSpec, cluster: ClusterSpec) -> int:
    """How many of a shared-port chip's ports face scale-out: the cluster's choice, else a
    quarter of them (at least one; estimate, as Maia 100's split is unpublished)."""
    if cluster.scaleout_ports is not None:
        return min(cluster.scaleout_ports, chip.shared_ports)
    return max(1, chip.shared_ports // 4)


def port_split(chip: ChipSpec, cluster: ClusterSpec) -> ChipSpec:
    """The chip as the cluster wires it: for a chip with ``shared_ports`` Ethernet ports of
    ``port_gbps``, ``scaleout_gbps`` = scale-out ports x port speed (Gbit/s) and
    ``scaleup_gbps`` = the other ports' bidirectional GB/s (``ports x Gbit/s / 8 x 2``); other
    chips unchanged."""
    if not chip.shared_ports:
        return chip
    out = scaleout_ports(chip, cluster)
    up = chip.shared_ports - out
    return replace(chip, scaleout_gbps=out * chip.port_gbps,
                   scaleup_gbps=up * chip.port_gbps / 8.0 * 2.0,
                   scaleup_links=up)


def fabric(cluster: ClusterSpec, chip: ChipSpec) -> str:
    """The scale-up fabric: the cluster's ``scaleup_fabric``, else ``"torus"`` on a torus
    topology, ``"ethernet"`` for a shared-port chip, ``"switched"`` otherwise."""
    if cluster.scaleup_fabric is not None:
        return cluster.scaleup_fabric
    if not network.is_switched_scaleup(cluster.topology):
        return "torus"
    return "ethernet" if chip.shared_ports else "switched"


def _domain(chip: ChipSpec, cluster: ClusterSpec) -> int:
    return max(1, min(cluster.n_chips, int(chip.scaleup_domain or 8)))


def sites(cluster: ClusterSpec) -> int:
    """How many whole sites a power budget split by ``site_mw`` holds (1 without a split)."""
    if cluster.site_mw is None or cluster.power_budget_mw is None:
        return 1
    return max(1, int(cluster.power_budget_mw / min(cluster.site_mw, cluster.power_budget_mw)
                      + 1e-9))


def equipment(chip: ChipSpec, cluster: ClusterSpec,
              scaleout_gbps: float | None = None) -> network.Equipment:
    """The cluster's network equipment (power W, capital USD) for ``cluster.n_chips`` of
    ``chip`` (``scaleout_gbps`` overrides the NIC, Gbit/s per chip); a budget split over
    sites is one network per site."""
    k = sites(cluster)
    if k > 1:
        one = replace(cluster, n_chips=cluster.n_chips // k, site_mw=None, power_budget_mw=None)
        return k * equipment(chip, one, scaleout_gbps)
    n = cluster.n_chips
    rack = cluster.chips_per_rack or DEFAULT_CHIPS_PER_RACK
    kind = fabric(cluster, chip)
    if chip.shared_ports:
        return network.shared_port_network(
            n, _domain(chip, cluster), chip.shared_ports, chip.port_gbps,
            scaleout_ports(chip, cluster), rack, cluster.topology, cluster.oversubscription,
            "direct" if kind == "direct" else "ethernet")
    nic = float(scaleout_gbps if scaleout_gbps is not None else chip.scaleout_gbps or 0.0)
    if kind in ("switched", "torus"):
        net = network.network(n, nic, cluster.topology, cluster.oversubscription,
                              switched_scaleup=kind == "switched")
        eq = network.Equipment(switches=net.switches, optics=net.optics, power_w=net.power_w,
                               capex_usd=net.capex_usd)
        if kind == "torus" and chip.scaleup_links:
            link_gbps = (chip.scaleup_gbps or 0.0) / chip.scaleup_links / 2.0 * 8.0
            eq = eq + network.torus_cabling(n, int(chip.scaleup_links), link_gbps,
                                            min(rack, n), cluster.ocs)
        return eq
    out = network.scaleout_fabric(n, nic, cluster.topology, cluster.oversubscription,
                                  nics=True)
    up_gbps = (chip.scaleup_gbps or 0.0) / 2.0 * 8.0  # bidirectional GB/s -> Gbit/s one way
    if kind == "ethernet":
        return out + network.ethernet_scaleup(n, _domain(chip, cluster), up_gbps, min(rack, n))
    links = int(chip.scaleup_links or 0)
    return out + network.direct_scaleup(n, _domain(chip, cluster), links,
                                        up_gbps / max(links, 1), min(rack, n))


def host_figures(host_cpu: str, cpus_per_host: int, chips_per_host: int,
                 host_dram_gb: float) -> tuple[float, float]:
    """``(W, USD)`` of the host per accelerator for a host CPU of the catalog
    (:mod:`codesign.model.catalog.platforms`)."""
    host = plat.get_host(host_cpu)
    return (plat.host_w_per_chip(host, cpus_per_host, chips_per_host, host_dram_gb),
            plat.host_usd_per_chip(host, cpus_per_host, chips_per_host, host_dram_gb))


def host_fields(host_cpu: str, cpus_per_host: int, chips_per_host: int,
                host_dram_gb: float, link_gbs: float = 0.0) -> dict[str, object]:
    """The ClusterSpec fields of a host of catalog CPU ``host_cpu`` (``cpus_per_host`` CPUs
    and ``host_dram_gb`` GB of DRAM serving ``chips_per_host`` accelerators, each on its own
    ``link_gbs`` GB/s link where narrower than the CPU's): its W and USD per accelerator
    and the host memory each accelerator sees (link GB/s, DRAM GB and GB/s). Raises
    KeyError for an unknown CPU."""
    w, usd = host_figures(host_cpu, cpus_per_host, chips_per_host, host_dram_gb)
    link, dram_gb, dram_gbs = plat.host_memory_per_chip(
        plat.get_host(host_cpu), cpus_per_host, chips_per_host, host_dram_gb, link_gbs)
    return {"host_cpu": host_cpu, "host_power_w_per_chip": w, "host_usd_per_chip": usd,
            "host_link_gbs": link, "host_memory_gb_per_chip": dram_gb,
            "host_memory_gbs_per_chip": dram_gbs}


def as_built(chip: ChipSpec, n_chips: int, **overrides: object) -> tuple[ChipSpec, ClusterSpec]:
    """A catalog chip and ``n_chips`` of it in the platform it is sold in
    (``platforms.toml``): its scale-up domain and fabric, host CPU, rack and its cooling, NIC
    or shared ports, scale-out topology. ``overrides`` are ClusterSpec fields the caller sets (a
    ``None`` value keeps the platform's). A chip without a platform comes back in the generic
    cluster (``ClusterSpec(n_chips)`` + overrides)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    p = plat.platform_of(chip.id) if chip.id else None
    if p is None:
        return chip, ClusterSpec(n_chips=n_chips, **given)
    chip = replace(chip, scaleup_domain=p.scaleup_domain, shared_ports=p.shared_ports,
                   port_gbps=p.port_gbps)
    if p.nic_gbps and chip.scaleout_gbps is None:
        chip = replace(chip, scaleout_gbps=p.nic_gbps)
    fabric_kind = {"torus-3d": None, "torus-2d": None}.get(p.scaleup, p.scaleup)
    topology = p.scaleup if p.scaleup.startswith("torus") else p.topology
    kwargs: dict[str, object] = {
        "topology": topology, "scaleup_fabric": fabric_kind, "chips_per_rack": p.chips_per_rack,
        "ocs": p.ocs, "cooling": p.cooling,
        **host_fields(p.host, p.cpus_per_host, p.chips_per_host, p.host_dram_gb,
                      p.host_link_gbs),
        "scaleout_ports": p.scaleout_ports if p.shared_ports else None,
    }
    kwargs.update(given)
    return chip, ClusterSpec(n_chips=n_chips, **kwargs)
