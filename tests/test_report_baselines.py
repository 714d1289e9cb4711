"""The experiment's reference chips ("baselines", as projected into the search space) on every
plot of the report: the figures' JSON names each chip, each plot draws the chip's own numbers,
and the page shows the marks in headless Chromium.

Runs: ``maia_vs_h100`` (both baselines feasible, two objectives, one of them a cost) and the
quickstart with ``h100-sxm`` and ``b200`` (the two-die B200 breaks ``n_compute_dies <= 1``
and ``tdp_w <= 1200``: an infeasible baseline).
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import re
from pathlib import Path
from typing import Any

import browser_helpers as bh
import numpy as np
import pandas as pd
import pytest

from codesign.cli import main
from codesign.results import plots
from codesign.results.report import PLOT_IDS, build_figures

REPO = Path(__file__).resolve().parents[1]
MAIA = ("h100-sxm", "maia100")


def _cli(*argv: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def maia(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("maia")
    _cli("search", str(REPO / "experiments" / "maia_vs_h100.toml"), "--trials", "64", "--out",
         str(tmp / "run"), "--no-progress")
    return tmp / "run"


@pytest.fixture(scope="module")
def maia_figs(maia: Path) -> dict[str, Any]:
    return build_figures(maia)


@pytest.fixture(scope="module")
def qs_b200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("qsb")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    text = text.replace('search_space = "../search_spaces/quickstart.toml"',
                        f'search_space = "{REPO / "search_spaces" / "quickstart.toml"}"')
    text = text.replace("[workload]", 'baselines = ["h100-sxm", "b200"]\n\n[workload]', 1)
    (tmp / "exp.toml").write_text(text, encoding="utf-8")
    _cli("search", str(tmp / "exp.toml"), "--trials", "48", "--out", str(tmp / "run"),
         "--no-progress")
    return tmp / "run"


def _run(path: Path) -> Any:
    import codesign

    return codesign.load_run(path)


def test_every_plot_names_every_baseline(maia: Path, maia_figs: dict[str, Any]) -> None:
    """Each plot of PLOT_IDS the run has (and each further sensitivity chart) names both
    chips in its figure JSON; the run has every plot but the 3-D front (two objectives)."""
    run = _run(maia)
    assert set(run.baselines["baseline"]) == set(MAIA)
    assert set(PLOT_IDS) - set(maia_figs) == {"plot-front3d"}
    for plot_id, fig in maia_figs.items():
        text = fig.to_json()
        for chip in MAIA:
            assert chip in text, (plot_id, chip)


def test_the_cost_objective_has_its_front_plot(maia: Path, maia_figs: dict[str, Any]) -> None:
    """cost_per_mtoken_usd is an axis of the 2-D front, and both chips are starred there at
    their baseline trial's values."""
    run = _run(maia)
    fig = maia_figs["plot-front2d"]
    titles = {fig.layout.xaxis.title.text, fig.layout.yaxis.title.text}
    assert any(t.startswith("cost_per_mtoken_usd") for t in titles), titles
    stars = [t for t in fig.data if t.name == plots.REFERENCE_NAME]
    assert len(stars) == 1 and sorted(stars[0].text) == sorted(MAIA)
    base = run.baselines.set_index("baseline")
    for chip, x, y in zip(stars[0].text, stars[0].x, stars[0].y, strict=True):
        assert (x, y) == pytest.approx((base.loc[chip, "tokens_per_joule"],
                                        base.loc[chip, "cost_per_mtoken_usd"]))


def test_parcoords_design_dimension_picks_out_each_baseline(
        maia: Path, maia_figs: dict[str, Any]) -> None:
    run = _run(maia)
    dims = maia_figs["plot-parcoords"].data[0].dimensions
    design = dims[0]
    assert design.label == "design"
    assert list(design.ticktext) == [plots.SEARCH_DESIGN, *sorted(MAIA)]
    assert list(design.tickvals) == [0, 1, 2]
    codes = np.asarray(design.values)
    feasible = run.feasible
    assert len(codes) == len(feasible)  # every chip has its trial: no line added
    for chip in MAIA:
        row = feasible.index[feasible["baseline"] == chip]
        assert len(row) == 1, chip
        assert codes[row[0]] == list(design.ticktext).index(chip)
    assert (codes == 0).sum() == len(feasible) - 2  # every other trial is "search"
    # each baseline's line carries its own parameters
    p = run.experiment.space.params[0]
    by_label = {d.label: np.asarray(d.values) for d in dims}
    np.testing.assert_allclose(by_label[p.name], feasible[f"param_{p.name}"].astype(float))


def test_the_hypervolume_line_is_what_the_baselines_dominate(
        maia: Path, maia_figs: dict[str, Any]) -> None:
    """The dashed line's value is :func:`plots.baseline_hypervolume` of the baseline trials;
    the baselines are trials 0 and 1, so it is also the curve's value after two trials
    (same reference point and normalisation); and a hand computation in 2-D."""
    from codesign.results.hypervolume import HV_REFERENCE, hypervolume_history

    run = _run(maia)
    fig = maia_figs["plot-hypervolume"]
    line = [t for t in fig.data if t.name.startswith(plots.BASELINES_HV_NAME)]
    assert len(line) == 1 and line[0].line.dash == "dash"
    assert all(c in line[0].name for c in MAIA)
    value = line[0].y[0]
    assert list(line[0].y) == [value, value]
    hv = hypervolume_history(run)
    base = run.baselines
    assert value == plots.baseline_hypervolume(base, hv)
    assert 0.0 < value < 1.0
    assert sorted(base["trial"]) == [0, 1]
    full = hypervolume_history(run, max_points=10_000)
    assert value == pytest.approx(full.loc[full["n_complete"] == 2, "hypervolume"].item(),
                                  rel=1e-12)
    # by hand: losses normalised by the bounds, the 2-D staircase below the reference point
    (tpj_lo, tpj_hi), (cost_lo, cost_hi) = (hv.attrs["bounds"][m] for m in
                                            ("tokens_per_joule", "cost_per_mtoken_usd"))
    pts = sorted(((tpj_hi - r["tokens_per_joule"]) / (tpj_hi - tpj_lo),
                  (r["cost_per_mtoken_usd"] - cost_lo) / (cost_hi - cost_lo))
                 for _, r in base.iterrows())
    area, top = 0.0, HV_REFERENCE
    for x, y in pts:
        if y < top:
            area += (HV_REFERENCE - x) * (top - y)
            top = y
    assert value == pytest.approx(area / HV_REFERENCE ** 2, rel=1e-9)
    assert "search passes it after" in fig.layout.annotations[0].text


def test_baseline_hypervolume_on_made_up_points() -> None:
    hv = pd.DataFrame({"n_complete": [1], "hypervolume": [0.5]})
    hv.attrs.update({"objectives": [("a", "minimize"), ("b", "maximize")],
                     "bounds": {"a": (0.0, 10.0), "b": (0.0, 10.0)}, "reference": 1.1})
    one = pd.DataFrame({"value_a": [5.0], "value_b": [5.0]})
    assert plots.baseline_hypervolume(one, hv) == pytest.approx(0.6 * 0.6 / 1.21)
    # a dominated point and a NaN row add nothing
    more = pd.DataFrame({"value_a": [5.0, 6.0, math.nan], "value_b": [5.0, 4.0, 9.0]})
    assert plots.baseline_hypervolume(more, hv) == pytest.approx(0.6 * 0.6 / 1.21)
    assert plots.baseline_hypervolume(one.iloc[:0], hv) == 0.0
    assert math.isnan(plots.baseline_hypervolume(one, pd.DataFrame()))


def test_infeasible_plot_says_all_baselines_feasible(maia_figs: dict[str, Any]) -> None:
    fig = maia_figs["plot-infeasible"]
    assert fig.layout.annotations[0].text == f"all baselines feasible ({', '.join(MAIA)})"
    assert not [t for t in fig.data if t.name == plots.BASELINE_TRACE]


def test_sensitivity_rows_are_each_baseline_vs_the_design(
        maia: Path, maia_figs: dict[str, Any]) -> None:
    """The hatched row of each chip is (chip - design) / |design|, in %, signed so that right
    is better, from the baseline trial's metrics and the design's re-evaluated ones."""
    from codesign.results.inspect import sensitivity

    run = _run(maia)
    fig = maia_figs["plot-sensitivity"]
    trial = int(run.best(run.objectives[0][0])["trial"])
    design = sensitivity(run, trial).attrs["design"]["metrics"]
    base = run.baselines.set_index("baseline")
    labels = [plots.baseline_label(c) for c in MAIA]
    for t in fig.data:
        metric = t.name.split(" (")[0]
        sign = 1.0 if "higher is better" in t.name else -1.0
        assert list(t.y[:2]) == labels and labels[0] not in t.y[2:]
        assert list(t.marker.pattern.shape[:2]) == ["/", "/"]
        assert set(t.marker.pattern.shape[2:]) == {""}
        for i, chip in enumerate(MAIA):
            want = 100.0 * sign * (base.loc[chip, metric] - design[metric]) / abs(design[metric])
            assert t.x[i] == pytest.approx(want, rel=1e-9), (metric, chip)
    assert {"tokens_per_joule (higher is better)",
            "cost_per_mtoken_usd (lower is better)"} <= {t.name for t in fig.data}


def test_an_infeasible_baseline_is_named_in_the_bar_of_its_reason(qs_b200: Path,
                                                                   tmp_path: Path) -> None:
    from codesign.results.hypervolume import hypervolume_history
    from codesign.results.inspect import infeasible_reasons
    from codesign.results.report import build_report

    run = _run(qs_b200)
    b200 = run.baselines.set_index("baseline").loc["b200"]
    assert not b200["constraints_ok"]
    figs = build_figures(qs_b200)
    fig = figs["plot-infeasible"]
    named = [t for t in fig.data if t.name == plots.BASELINE_TRACE]
    assert len(named) == 1
    assert list(named[0].text) == ["b200"] and list(named[0].x) == [1]
    bars = infeasible_reasons(run, by="category")
    reason = named[0].y[0]
    assert reason == "n_compute_dies > 1, tdp_w > 1200"  # both bounds it breaks
    assert reason in list(bars["category"])  # the bar of its reason
    assert "b200" in named[0].hovertext[0] and reason in named[0].hovertext[0]
    assert "infeasible baselines: b200" in fig.layout.annotations[0].text
    # no feasible trial: not in the parallel coordinates nor in the line, and a note says so
    assert list(figs["plot-parcoords"].data[0].dimensions[0].ticktext) == ["search",
                                                                           "h100-sxm"]
    line = [t for t in figs["plot-hypervolume"].data
            if t.name.startswith(plots.BASELINES_HV_NAME)]
    assert line[0].name == f"{plots.BASELINES_HV_NAME} (h100-sxm)"
    ok = run.baselines[run.baselines["constraints_ok"].astype(bool)]
    assert line[0].y[0] == plots.baseline_hypervolume(ok, hypervolume_history(run))
    page = build_report(qs_b200)
    assert html.escape(f"b200: no feasible trial ({reason}), not drawn") in page
    # ... and named, with the reason, inside each plot that does not draw it
    for key in ("plot-parcoords", "plot-hypervolume"):
        text = " ".join(a.text for a in figs[key].layout.annotations)
        assert f"not drawn here: b200 ({reason})" in text, key
    for plot_id, fig in figs.items():
        assert "b200" in fig.to_json(), plot_id
    # the model maps it: it keeps its sensitivity row, saying which bounds it breaks
    rows = list(figs["plot-sensitivity"].data[0].y)
    assert f"{plots.baseline_label('b200')} [breaks {reason}]" in rows


def test_a_chip_only_named_by_against_is_drawn_from_its_projection(maia: Path) -> None:
    """``--against b200``: no trial of the run, evaluated at its projected point; every plot
    still names it (a line of its own in the parallel coordinates, or a note)."""
    figs = build_figures(maia, against=["h100-sxm", "b200"])
    for plot_id, fig in figs.items():
        assert "b200" in fig.to_json(), plot_id
    base = plots.baseline_rows(_run(maia), ["h100-sxm", "b200"], [])
    assert list(base["chip"]) == ["h100-sxm"]  # without compare documents: trials only
    design = figs["plot-parcoords"].data[0].dimensions[0]
    assert "b200" in design.ticktext  # feasible at its projected point: one line added
    assert list(design.values).count(list(design.ticktext).index("b200")) == 1
    assert len(design.values) == len(_run(maia).feasible) + 1


def test_the_page_shows_the_baselines_on_every_plot(maia: Path, tmp_path: Path) -> None:
    """Headless Chromium: no console or page error, and text nodes naming each chip inside
    every plot's element."""
    bh.require_browser()
    out = tmp_path / "report.html"
    _cli("report", str(maia), "-o", str(out))
    plot_ids = ("plot-front2d", "plot-parcoords", "plot-hypervolume", "plot-infeasible",
                "plot-sensitivity", "plot-breakdown")
    selectors = {f"{p} {c}": f'#{p} text:has-text("{c}")' for p in plot_ids for c in MAIA}
    selectors["parcoords drawn"] = "#plot-parcoords .gl-canvas"
    selectors["dashed line"] = "#plot-hypervolume .scatterlayer .trace path.js-line"
    rep = bh.check_page(out, selectors, tmp_path / "shot.png", wait_ms=20000)
    assert not rep.console_errors and not rep.page_errors, (rep.console_errors, rep.page_errors)
    assert not rep.blocked_requests, rep.blocked_requests
    missing = [k for k, n in rep.counts.items() if n < 1]
    assert not missing, missing
    assert rep.counts["dashed line"] >= 2  # the curve and the baselines' line
    # the dashed line is drawn dashed
    assert re.search(r'"dash":\s*"dash"', out.read_text(encoding="utf-8"))
