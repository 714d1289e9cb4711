"""Strict TOML -> an experiment's ``[traffic]`` table (serving under traffic: the
:class:`~codesign.model.serving.Traffic` and the pools), and the check that a search space
with ``decode_*`` parameters has one (:mod:`codesign.search.toml_checks` rules)."""

from __future__ import annotations

from typing import Any

from codesign.model.specs import InferJob
from codesign.search.design import DECODE_PREFIX
from codesign.search.toml_checks import _MISSING, _Plain, _Table

TRAFFIC_KEYS = {  # key: (type, low, high), as Traffic's fields
    "rate_rps": ("float", 0.0, None), "input_cv": ("float", 0.0, 10.0),
    "output_cv": ("float", 0.0, 10.0), "prefix_hit": ("float", 0.0, 0.99),
    "spec_k": ("int", 0, 16), "spec_accept": ("float", 0.0, 1.0),
    "spec_cost": ("float", 0.0, 1.0), "chunk": ("int", 0, 1_000_000),
    "percentile": ("float", 0.5, 0.9999), "prefill_chips": ("int", 1, None),
}
POOLS = ("one", "disaggregated", "both")


def _traffic(t: _Table, job: Any) -> tuple[Any, str]:
    """``[traffic]``: (a :class:`~codesign.model.serving.Traffic`, pools), or (None, "both")
    when the table is absent. Serving workloads only; ``pools``: one pool, disaggregated
    pools, or both (each design's best, and both goodputs logged)."""
    if not t.data:
        return None, "both"
    from codesign.model.serving import Traffic  # with the kernels: only where it is needed

    t.only((*TRAFFIC_KEYS, "pools", "kv_over_scaleup"))
    if not isinstance(job, InferJob):
        raise t.error(next(iter(t.data)), "a serving workload (kind = \"infer\") for "
                      "[traffic]", _Plain("a training workload"))
    values = {k: t.get(k, kind, low=low, high=high) for k, (kind, low, high)
              in TRAFFIC_KEYS.items() if k in t.data}
    pools = t.get("pools", "str", default="both", choices=POOLS)
    kv_up = t.get("kv_over_scaleup", "bool", default=False)
    if pools == "one":  # disaggregation's own keys would be silently ignored
        for key in ("prefill_chips", "kv_over_scaleup"):
            if key in t.data:
                raise t.error(key, 'pools = "disaggregated" or "both" (one pool has no '
                              "prefill pool)", t.data[key])
    return Traffic(**values, kv_over_scaleup=kv_up), pools


def check_prefill_chips(t: _Table, traffic: Any, n_chips: Any) -> None:
    """``[traffic] prefill_chips`` fewer than the cluster's fixed chip count, as
    ``codesign evaluate --prefill-chips`` requires (unchecked when the count is searched or
    set by a power budget)."""
    if traffic is None or not traffic.prefill_chips or not isinstance(n_chips, int | float):
        return
    if traffic.prefill_chips >= n_chips:
        raise t.error("prefill_chips", f"fewer than the cluster's {int(n_chips)} chips",
                      traffic.prefill_chips)


def _check_decode_pool(doc: _Table, space: Any, traffic: Any, pools: str) -> None:
    """A space with ``decode_*`` parameters (a second chip for the decode pool) needs a
    ``[traffic]`` table whose pools may be disaggregated."""
    decode = [k for k in [p.name for p in space.params] + list(space.base)
              if k.startswith(DECODE_PREFIX)]
    if not decode:
        return
    if traffic is None:
        raise doc.error("traffic", "a [traffic] table with pools = \"disaggregated\" or "
                        f"\"both\" (the search space {space.path} gives the decode pool its "
                        f"own chip: {decode[0]})", _MISSING)
    if pools == "one":
        raise doc.error("traffic.pools", "\"disaggregated\" or \"both\" (the search space "
                        f"{space.path} gives the decode pool its own chip: {decode[0]})", pools)
