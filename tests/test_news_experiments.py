"""The experiments that answer issue 15's questions run, evaluate every baseline in its
platform, and report them (a short budget each; the README quotes the full runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesign.cli import main

REPO = Path(__file__).resolve().parents[1]
NEWS = {"maia_vs_h100.toml": ("h100-sxm", "maia100"),
        "ethernet_rack_2027.toml": ("h100-sxm", "b200", "gb200"),
        "cluster_15k_h100.toml": ("h100-sxm",)}


@pytest.mark.parametrize("name", sorted(NEWS))
def test_news_experiment_runs_and_reports_its_baselines(name: str, tmp_path: Path,
                                                         capsys) -> None:
    import codesign
    from codesign.results.report import build_report

    run_dir = tmp_path / "run"
    assert main(["search", str(REPO / "experiments" / name), "--trials", "64", "--out",
                 str(run_dir), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials_total_complete"] >= 64
    run = codesign.load_run(run_dir)
    assert set(run.baselines["baseline"]) == set(NEWS[name])
    assert len(run.pareto) >= 1
    html = build_report(run_dir)
    for chip in NEWS[name]:
        assert chip in html


def test_maia_report_draws_the_baselines_and_the_cost_breakdown(tmp_path: Path,
                                                                 capsys) -> None:
    """In headless Chromium: the front with both reference chips marked, and the stacked
    watts-and-dollars bars with a column for each of them."""
    import browser_helpers as bh

    bh.require_browser()
    run_dir = tmp_path / "run"
    assert main(["search", str(REPO / "experiments" / "maia_vs_h100.toml"), "--trials", "96",
                 "--out", str(run_dir), "--no-progress"]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    capsys.readouterr()
    selectors = {"front": "#plot-front2d .scatterlayer .point",
                 "breakdown": "#plot-breakdown .barlayer .point",
                 "ticks": "#plot-breakdown .xtick text"}
    rep = bh.check_page(out, selectors, tmp_path / "shot.png", wait_ms=15000)
    assert not rep.console_errors and not rep.page_errors, (rep.console_errors, rep.page_errors)
    assert rep.counts.get("front", 0) >= 3
    assert rep.counts.get("breakdown", 0) >= 2 * 4 * 3  # 2 panels x 4 parts x >= 3 columns
    text = out.read_text(encoding="utf-8")
    assert "h100-sxm" in text and "maia100" in text
