"""Goodput of a training job at scale: failures by component, checkpoints, restarts, spares and
the blast radius of each failure (:func:`goodput`).

Every failure of a component a synchronous job uses interrupts the job: it restarts from its
last checkpoint (Daly's model, :mod:`codesign.model.checkpoint`), losing the restart time and
the work since that checkpoint. The failed unit (its node, or its whole scale-up domain where
the domain is a switched fabric larger than a node: the tensor- and expert-parallel groups
live in it) stays out until repaired. A hot spare in the failed unit's domain takes its place
in a swap (``swap_s`` instead of ``restart_s``, the job keeps its size); without one the job
restarts on the chips it has left, one data-parallel replica fewer, until the repair.

Rates are failures per component per day, each from a public fleet report (none fitted to the
Llama 3 run, which is the check in ``scripts/goodput_check.py``):

* node-level failures (an 8-GPU A100 node, jobs of > 128 GPUs): 5e-3 per node-day, the rate
  Kokolis et al., "Revisiting Reliability in Large-Scale Machine Learning Research Clusters"
  (HPCA 2025, arXiv 2410.21680) use in their ETTR model (measured 6.50 and 2.34 per 1,000
  node-days on RSC-1 and RSC-2); split by cause with the failure mix of a 4-month H100/H200
  fleet report quoted by G. Lockwood (glennklockwood.com/garden/component-reliability,
  Crusoe: GPU 61 % (host replacement 41.5 + recoverable 19.5), InfiniBand 29.2 %, the rest
  9.8 %): GPU, network port (NIC, its cable and transceiver), host;
* the GPU share split between the HBM stacks and the rest of the package: a third to HBM
  (estimate: no fleet report outside the Llama 3 run separates them), per stack over the
  A100's 5;
* scale-out switches: a 2 % chance of failing within 3 months per switch (Microsoft's study
  of over 180,000 data-centre switches, Singh et al., SIGCOMM CCR 2021);
* inter-switch optical links: 0.057 % of links fail each month (Alibaba HPN, SIGCOMM 2024,
  section 2.3, NIC-ToR links).

Software failures (bugs, collective timeouts) are not in these rates: ``software_per_day``
adds them per job when known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from codesign.model.checkpoint import checkpoint_bytes, effective_fraction, optimal_interval_s

NODE_CHIPS = 8
"""Chips of the node the node-level rates are counted on (8-GPU A100 nodes, Kokolis et al.)."""
NODE_PER_DAY = 5e-3
"""Node-level failures per node-day (Kokolis et al. 2025, the ETTR model's r_f)."""
GPU_SHARE, NETWORK_SHARE, HOST_SHARE = 0.61, 0.292, 0.098
"""Split of node-level failures by cause (Crusoe fleet mix via glennklockwood.com)."""
HBM_SHARE_OF_GPU = 1.0 / 3.0
"""Share of GPU failures in the HBM stacks (estimate, see the module doc)."""
REFERENCE_STACKS = 5
"""HBM stacks of the A100 the GPU rate was measured on."""
SWITCH_PER_DAY = 0.02 / 91.0
"""Scale-out switch failures per switch-day (Microsoft: 2 % within 3 months)."""
OPTIC_LINK_PER_DAY = 0.00057 / 30.4
"""Optical link failures per link-day (Alibaba HPN: 0.057 % of links per month)."""
SWITCH_BLAST_CHIPS = 32
"""Chips behind one leaf switch (half the ports of a 64-port switch face the chips' NICs,
tech.Facility.switch_radix)."""

PER_CHIP_DAY = {
    "accelerator": NODE_PER_DAY * GPU_SHARE * (1.0 - HBM_SHARE_OF_GPU) / NODE_CHIPS,
    "network_port": NODE_PER_DAY * NETWORK_SHARE / NODE_CHIPS,
    "host": NODE_PER_DAY * HOST_SHARE / NODE_CHIPS,
}
"""Failures per chip-day of what every chip brings (its package without HBM, its NIC port and
link, its share of a host)."""
PER_STACK_DAY = NODE_PER_DAY * GPU_SHARE * HBM_SHARE_OF_GPU / NODE_CHIPS / REFERENCE_STACKS
"""HBM failures per stack-day."""


@dataclass(frozen=True)
class Resilience:
    """How a training job survives failures (units: s, GB/s, days)."""

    checkpoint_gbps: float = 2000.0
    """Aggregate bandwidth of the checkpoint storage, GB/s, written and read (default: the
    sustained 2 TB/s of Meta's Tectonic cluster, Llama 3 paper section 3.3.1)."""
    async_checkpoint: bool = False
    """Training pauses only to copy its shard to host memory; the write to storage overlaps
    (the interval is then at least the write time)."""
    checkpoint_interval_s: float = 0.0
    """Seconds of training between checkpoints (0: Daly's optimum)."""
    restart_s: float = 600.0
    """Relaunch, re-initialise and re-warm after a failure, s, checkpoint load excluded
    (Kokolis et al.: 5-20 min; the middle)."""
    spares_per_domain: int = 0
    """Hot spare chips kept in each scale-up domain (or node), powered and paid for."""
    swap_s: float = 120.0
    """Recovery when a hot spare takes the failed unit's place, s (estimate)."""
    repair_h: float = 4.0
    """Hours until a failed unit is back (estimate)."""
    software_per_day: float = 0.0
    """Software interruptions of the job per day (bugs, collective timeouts), if known."""


def blast_chips(n_chips: int, domain: int, switched: bool) -> int:
    """Chips one chip-level failure takes out of the job: its node, or its switched scale-up
    domain where larger."""
    unit = domain if switched and domain > NODE_CHIPS else NODE_CHIPS
    return max(1, min(unit, n_chips))


def failures_per_day(n_chips: int, hbm_stacks: int, switches: float, optical_links: float
                     ) -> dict[str, float]:
    """Expected failures per day of each component of a job on ``n_chips`` chips."""
    out = {k: v * n_chips for k, v in PER_CHIP_DAY.items()}
    out["hbm"] = PER_STACK_DAY * n_chips * max(hbm_stacks, 0)
    out["switch"] = SWITCH_PER_DAY * switches
    out["optics"] = OPTIC_LINK_PER_DAY * optical_links
    return out


def goodput(n_chips: int, tokens_per_s: float, params: float, *, hbm_stacks: int,
            domain: int, switched: bool, switches: float, optical_links: float,
            host_link_gbs: float, res: Resilience = Resilience()) -> dict[str, Any]:
    """The goodput of a training job of ``params`` parameters running at ``tokens_per_s`` on
    ``n_chips`` chips. Returns ``failures_per_day`` (by component), ``interruptions_per_day``,
    ``mtbf_h``, ``checkpoint_gb``, ``checkpoint_block_s`` (training paused per checkpoint),
    ``checkpoint_write_s``, ``restore_s``, ``recover_s`` (per failure, restore included),
    ``checkpoint_interval_s``, ``spare_chips``, ``spare_cover`` (share of failures a spare
    absorbs), ``capacity_loss`` (share of the job's chips out for repair), the shares of wall
    time lost to ``checkpoints``, ``restarts``, ``lost_work`` and ``repair`` (with
    ``effective_training_fraction`` they sum to 1), and ``goodput_tokens_per_s``."""
    fails = failures_per_day(n_chips, hbm_stacks, switches, optical_links)
    fails["software"] = res.software_per_day
    per_day = sum(fails.values())
    mtbf_s = 86400.0 / per_day if per_day > 0 else math.inf
    ckpt_b = checkpoint_bytes(params)
    write_s = ckpt_b / (res.checkpoint_gbps * 1e9)
    block_s = (ckpt_b / n_chips / (host_link_gbs * 1e9) if res.async_checkpoint else write_s)
    unit = blast_chips(n_chips, domain, switched)
    n_units = max(1, n_chips // unit)
    spares = res.spares_per_domain * n_units
    # a spare absorbs a failure if its domain has not used up its spares before the repair
    hw = per_day - fails["software"] - fails["switch"] - fails["optics"]
    lam_unit = hw / n_units * res.repair_h / 24.0  # failures per unit within one repair
    cover = (_poisson_cdf(res.spares_per_domain - 1, lam_unit)
             if res.spares_per_domain > 0 else 0.0)
    share_hw = hw / per_day if per_day > 0 else 0.0
    restore_s = write_s
    recover_s = restore_s + res.restart_s * (1 - cover * share_hw) + res.swap_s * cover * share_hw
    tau = res.checkpoint_interval_s or optimal_interval_s(block_s, mtbf_s)
    if res.async_checkpoint:
        tau = max(tau, write_s)
    frac = effective_fraction(tau, block_s, recover_s, mtbf_s) if math.isfinite(tau) else 1.0
    # chips out for repair: a unit without a spare, a switch's chips (no spares behind it)
    out_chip_h = ((hw * (1 - cover) * unit + fails["switch"] * SWITCH_BLAST_CHIPS)
                  * res.repair_h)
    capacity_loss = min(1.0, out_chip_h / 24.0 / n_chips)
    # the wall time not training, split in proportion to Daly's first-order terms: checkpoint
    # pauses delta/tau, recoveries R/M, work redone (tau + delta)/(2M)
    fin = math.isfinite(mtbf_s) and math.isfinite(tau) and tau > 0
    terms = ((block_s / tau if tau > 0 and math.isfinite(tau) else 0.0),
             (recover_s / mtbf_s if fin else 0.0), ((tau + block_s) / (2 * mtbf_s) if fin
                                                   else 0.0))
    total = sum(terms)
    ckpt_share, restart_share, lost_share = (
        (1.0 - frac) * x / total if total > 0 else 0.0 for x in terms)
    eff = frac * (1.0 - capacity_loss)
    return {
        "failures_per_day": fails, "interruptions_per_day": per_day,
        "mtbf_h": mtbf_s / 3600.0, "checkpoint_gb": ckpt_b / 1e9,
        "checkpoint_block_s": block_s, "checkpoint_write_s": write_s, "restore_s": restore_s,
        "recover_s": recover_s, "checkpoint_interval_s": tau, "spare_chips": spares,
        "spare_cover": cover, "capacity_loss": capacity_loss, "checkpoints": ckpt_share,
        "restarts": restart_share, "lost_work": lost_share,
        "repair": frac * capacity_loss,
        "effective_training_fraction": eff, "goodput_tokens_per_s": tokens_per_s * eff,
    }


def _poisson_cdf(k: int, lam: float) -> float:
    """P(N <= k) for N ~ Poisson(lam)."""
    if k < 0:
        return 0.0
    term = total = math.exp(-lam)
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return min(1.0, total)
