"""Where a training job's wall time and failures go (the report's ``plot-goodput``): for each
reference chip (as projected into the search space) and each best design, failures per day by
component and the shares of wall time that train, write checkpoints, restart, redo lost work
or wait for a repair (:func:`codesign.model.perf.goodput_breakdown`)."""

from __future__ import annotations

from typing import Any

FAILURE_PARTS = ("accelerator", "hbm", "network_port", "host", "switch", "optics", "software")
TIME_PARTS = (("training", "effective_training_fraction"), ("checkpoints", "checkpoints"),
              ("restarts", "restarts"), ("lost work", "lost_work"),
              ("out for repair", "repair"))
COLORS = ("#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def breakdown_of(exp: Any, design: dict[str, Any], tokens_per_s: float
                 ) -> dict[str, Any] | None:
    """The goodput breakdown of one design of ``exp`` running at its stored ``tokens_per_s``
    (None: a chip that cannot be built, no throughput, or a serving workload)."""
    from codesign.model import perf
    from codesign.model.cluster.build import equipment
    from codesign.search.design import design_area, design_to_chip, design_to_cluster
    from codesign.search.space import cluster_extra

    area = design_area(design)
    if area.reason or not tokens_per_s:
        return None
    chip = design_to_chip(design, area=area)
    cluster = perf.sized_cluster(chip, design_to_cluster(design, cluster_extra(exp)))
    return perf.goodput_breakdown(chip, cluster, tokens_per_s, exp.job,
                                  equipment(chip, cluster))


def columns(exp: Any, docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(bar label, breakdown)`` of each reference chip's projection and each best design
    of the compare documents (:func:`codesign.results.compare.compare_run`: their designs and
    stored throughputs, nothing evaluated again)."""
    from codesign.search.space import base_design, design_from_params

    out = []
    for doc in docs:
        ref = doc["baseline"]
        g = (breakdown_of(exp, ref["design_projection"], ref["metrics"].get("tokens_per_s"))
             if ref["meaning"] == "projected" and ref["feasible"] else None)
        if g is not None:
            out.append((ref["id"], g))
    seen: set[int] = set()
    for best in (docs[0]["best"] if docs else []):
        if best["trial"] in seen:
            continue
        seen.add(best["trial"])
        g = breakdown_of(exp, design_from_params(base_design(exp), best["params"]),
                         best["metrics"].get("tokens_per_s"))
        if g is not None:
            out.append((f"trial {best['trial']} (best {best['objective']})", g))
    return out


def figure(cols: list[tuple[str, dict[str, Any]]]) -> Any:
    """Two panels of stacked bars: failures per day by component, shares of wall time."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = [c[0] for c in cols]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("job interruptions per day",
                                                        "share of wall time"))
    for i, part in enumerate(FAILURE_PARTS):
        fig.add_trace(go.Bar(x=labels, y=[g["failures_per_day"].get(part, 0.0) for _, g in cols],
                             name=part, marker={"color": COLORS[i]}), 1, 1)
    for i, (name, key) in enumerate(TIME_PARTS):
        fig.add_trace(go.Bar(x=labels, y=[g[key] for _, g in cols], name=name,
                             marker={"color": COLORS[i]}, showlegend=True), 1, 2)
    fig.update_layout(barmode="stack", height=460, margin={"t": 40, "l": 40, "r": 20, "b": 120})
    return fig
