"""Where a cluster's watts and dollars go, per chip: the reference chips (as projected into the
search space) next to the best design of each objective, as stacked bars (chip, host,
network, cooling; chip, host, network, building)."""

from __future__ import annotations

import math
from typing import Any

POWER_PARTS = (("chip_power_w", "chip"), ("host_w_per_chip", "host"),
               ("network_w_per_chip", "network"), ("cooling_w_per_chip", "cooling (PUE)"))
"""Metric and legend name of each stacked part of the power bars (W per chip)."""
CAPEX_PARTS = (("chip_cost_usd", "chip"), ("host_usd_per_chip", "host"),
               ("network_usd_per_chip", "network"), ("facility_usd_per_chip", "building"))
"""Metric and legend name of each stacked part of the capital bars (USD per chip)."""
COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")


def _value(metrics: dict[str, Any], key: str) -> float:
    try:
        v = float(metrics.get(key))
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def columns(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(bar label, metrics)``: each feasible reference chip of the compare documents
    (:func:`codesign.results.compare.compare_run`), then each best design once."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[int] = set()
    for doc in docs:
        if doc["baseline"]["feasible"]:
            out.append((doc["baseline"]["id"], doc["baseline"]["metrics"]))
    for doc in docs[:1]:
        for best in doc["best"]:
            if best["trial"] not in seen:
                seen.add(best["trial"])
                out.append((f"trial {best['trial']} (best {best['objective']})",
                            best["metrics"]))
    return out


def figure(docs: list[dict[str, Any]]) -> Any:
    """Two panels of stacked bars: W per chip and USD per chip, by part."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = columns(docs)
    labels = [c[0] for c in cols]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("power per chip (W, drawn)",
                                                        "capital per chip (USD)"))
    for i, (key, name) in enumerate(POWER_PARTS):
        fig.add_trace(go.Bar(x=labels, y=[_value(m, key) for _, m in cols], name=name,
                             marker={"color": COLORS[i]}, legendgroup=name), 1, 1)
    for i, (key, name) in enumerate(CAPEX_PARTS):
        fig.add_trace(go.Bar(x=labels, y=[_value(m, key) for _, m in cols], name=name,
                             marker={"color": COLORS[i]}, legendgroup=name,
                             showlegend=False), 1, 2)
    fig.update_layout(barmode="stack", height=460, margin={"t": 40, "l": 40, "r": 20, "b": 120})
    return fig
