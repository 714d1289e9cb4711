"""The names of percentile objectives and constraints (``metric@pNN``) and the metrics that
have bands: what an experiment file is checked against, without the model's kernels (the
bands themselves are :mod:`codesign.search.uncertainty`'s)."""

from __future__ import annotations

import re

BAND_METRICS = ("tokens_per_s", "tokens_per_s_per_chip", "step_time_s", "mfu", "ttft_s",
                "itl_s", "chip_power_w", "cluster_power_w", "tokens_per_joule",
                "energy_per_token_j", "tokens_per_s_per_mw", "tokens_per_s_per_gw",
                "cost_per_mtoken_usd", "cost_per_run_usd", "train_days", "chip_cost_usd",
                "clock_fraction")
"""Metrics a band is reported for (those of the job kind: NaN ones are left out)."""
PERCENTILE_RE = re.compile(r"^(?P<metric>[a-z0-9_]+)@p(?P<pct>[0-9]{1,2})$")
"""A percentile objective or constraint: ``metric@pNN`` (NN in 1..99)."""


def parse_percentile(name: str) -> tuple[str, float] | None:
    """``("tokens_per_joule", 10.0)`` for ``"tokens_per_joule@p10"``, None for a plain
    metric name."""
    m = PERCENTILE_RE.match(name)
    if m is None:
        return None
    return m.group("metric"), float(m.group("pct"))
