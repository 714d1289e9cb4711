"""The facility around the cluster: non-accelerator IT power per chip, how many chips a power
budget feeds (PUE), and capital cost per second of operation. The network equipment it
counts is :mod:`codesign.model.cluster.network`.

Example:
    >>> overhead_w_per_chip(1024, 400.0, "fat-tree", 1.0, host_w_per_chip=110.0) > 110.0
    True
"""

from __future__ import annotations

from collections.abc import Callable

from codesign.model import tech
from codesign.model.cluster.network import network


def overhead_w_per_chip(n_chips: int, scaleout_gbps: float, topology: str,
                        oversubscription: float, host_w_per_chip: float) -> float:
    """Non-accelerator IT power per chip, W: host share + NICs, switches, optics."""
    net = network(n_chips, scaleout_gbps, topology, oversubscription)
    return host_w_per_chip + net.power_w / max(n_chips, 1)


def chips_for_budget(budget_mw: float, chip_tdp_w: float, scaleout_gbps: float, topology: str,
                     oversubscription: float, host_w_per_chip: float, pue: float) -> int:
    """Accelerators a facility of ``budget_mw`` can power at their TDP (provisioned peak):
    ``budget / (PUE x (TDP + overhead per chip))``, iterated because the network share
    depends on the count (the generic NIC + fat-tree network)."""
    return chips_for_budget_by(
        budget_mw, chip_tdp_w, pue, host_w_per_chip,
        lambda n: overhead_w_per_chip(n, scaleout_gbps, topology, oversubscription,
                                      host_w_per_chip))


def chips_for_budget_by(budget_mw: float, chip_tdp_w: float, pue: float, host_w_per_chip: float,
                        overhead_w: Callable[[int], float]) -> int:
    """:func:`chips_for_budget` for any network: ``overhead_w(n)`` is the host + network W per
    chip of an ``n``-chip cluster."""
    per_chip = chip_tdp_w + host_w_per_chip
    n = max(1, int(budget_mw * 1e6 / (pue * per_chip)))
    for _ in range(4):
        per_chip = chip_tdp_w + overhead_w(n)
        n = max(1, int(budget_mw * 1e6 / (pue * per_chip)))
    return n


def capex_usd_per_s(n_chips: int, chip_price_usd: float, facility_it_w: float,
                    net_capex_usd: float, prices: tech.Prices = tech.PRICES) -> float:
    """Capital cost per second of operation: IT equipment over its amortisation period and
    the building over its own, USD/s."""
    year_s = 365.25 * 86400.0
    it = n_chips * (chip_price_usd + prices.host_usd_per_chip) + net_capex_usd
    building = prices.facility_usd_per_w * facility_it_w
    return it / (prices.amortization_years * year_s) + building / (prices.facility_years * year_s)


def provisioned_w(n_chips: int, chip_tdp_w: float, overhead_w_per_chip: float, pue: float,
                  budget_mw: float | None = None) -> float:
    """Facility power provisioned for the cluster, W: its power budget when it has one (the
    site is built for it), else every chip at its TDP plus its host and network share, times
    the PUE (what the building must deliver at peak, not what a job draws)."""
    if budget_mw is not None:
        return budget_mw * 1e6
    return n_chips * (chip_tdp_w + overhead_w_per_chip) * pue
