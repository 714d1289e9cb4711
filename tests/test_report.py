"""``codesign report``: one self-contained HTML file, checked in a real headless Chromium.

The page is opened from file:// with every network request blocked: it must load with no
console or page error, no request leaving the file, every plot drawn (Plotly's SVG/WebGL
layers present, with points in them) and a non-blank screenshot. A report with a plot
removed must fail the same check. Needs Chromium (``bash scripts/chromium.sh``, run by
scripts/test.sh) and playwright; skipped with that message otherwise.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import browser_helpers as bh
import pytest

from codesign.cli import main
from codesign.results.report import PLOT_IDS

REPO = Path(__file__).resolve().parents[1]

# What "drawn" means for each plot: a selector that only matches once Plotly has rendered
# the data (markers, bars, lines, WebGL canvases), and the least number of matches.
DRAWN = {
    # SVG markers, or WebGL canvases above report.WEBGL_ABOVE trials
    "plot-front2d": ("#plot-front2d .scatterlayer .point, #plot-front2d .gl-canvas", 3),
    "plot-front3d": ("#plot-front3d .gl-container canvas", 1),
    "plot-parcoords": ("#plot-parcoords .gl-canvas", 1),
    "plot-hypervolume": ("#plot-hypervolume .scatterlayer .trace path.js-line", 1),
    "plot-infeasible": ("#plot-infeasible .barlayer .point", 1),
    "plot-sensitivity": ("#plot-sensitivity .barlayer .point", 3),
    # the reference chip and the best designs, four stacked parts each, in two panels
    "plot-breakdown": ("#plot-breakdown .barlayer .point", 16),
}
TABLES = {"table-front": "#table-front tbody tr", "table-compare": "#table-compare table tr"}


def run(*argv: str) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr); usable from module fixtures."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-objective quickstart run with an H100 baseline, and its report."""
    tmp = tmp_path_factory.mktemp("report")
    exp = tmp / "exp.toml"
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    text = text.replace('search_space = "../search_spaces/quickstart.toml"',
                        f'search_space = "{REPO / "search_spaces" / "quickstart.toml"}"')
    text = text.replace("[workload]", 'baselines = ["h100-sxm"]\n\n[workload]', 1)
    exp.write_text(text, encoding="utf-8")
    code, _out, err = run("search", str(exp), "--trials", "96", "--out",
                          str(tmp / "run"), "--no-progress")
    assert code == 0, err
    out = tmp / "report.html"
    code, stdout, err = run("report", str(tmp / "run"), "-o", str(out))
    assert code == 0, err
    assert str(out) in stdout
    return out


def check(html: Path, shot: Path) -> tuple[bh.PageReport, list[str]]:
    """Open the report and list what is wrong with it (empty = every plot drawn)."""
    selectors = {k: sel for k, (sel, _n) in DRAWN.items()} | TABLES
    rep = bh.check_page(html, selectors, shot, wait_ms=15000)
    problems = [f"{k}: {rep.counts.get(k, 0)} '{sel}' (want >= {n})"
                for k, (sel, n) in DRAWN.items() if rep.counts.get(k, 0) < n]
    problems += [f"{k}: no rows" for k in TABLES if rep.counts.get(k, 0) < 2]
    problems += [f"console error: {e}" for e in rep.console_errors]
    problems += [f"page error: {e}" for e in rep.page_errors]
    problems += [f"network request: {u}" for u in rep.blocked_requests]
    if rep.nonblank_fraction < 0.02:
        problems.append(f"blank screenshot ({rep.nonblank_fraction:.3f} non-background)")
    return rep, problems


def test_report_is_self_contained(report_html: Path) -> None:
    text = report_html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", text), "an external script"
    assert not re.search(r"<link[^>]+href=", text), "an external stylesheet"
    for plot_id in PLOT_IDS:
        assert f'id="{plot_id}"' in text, plot_id
    assert "h100-sxm" in text  # the reference chip is marked and compared


def test_report_renders_offline_in_chromium(report_html: Path, tmp_path: Path) -> None:
    bh.require_browser()
    rep, problems = check(report_html, tmp_path / "report.png")
    assert not problems, problems
    assert rep.distinct_colours > 50


def test_a_missing_plot_fails_the_check(report_html: Path, tmp_path: Path) -> None:
    """The check is not vacuous: the same page without its hypervolume plot fails it."""
    bh.require_browser()
    text = report_html.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace('id="plot-hypervolume"', 'id="gone"'), encoding="utf-8")
    _rep, problems = check(broken, tmp_path / "broken.png")
    assert any(p.startswith("plot-hypervolume") for p in problems), problems
    assert not any(p.startswith("plot-front2d") for p in problems), problems


def test_report_bad_input_exits_2(tmp_path: Path, report_html: Path) -> None:
    code, _out, err = run("report", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err
    code, _out, err = run("report", str(report_html.parent / "run"), "--against", "h999")
    assert code == 2 and "h999" in err
    code, _out, err = run("report", str(report_html.parent / "run"), "--design", "99999")
    assert code == 2 and "--design" in err
    code, _out, err = run("report", str(report_html.parent / "run"), "-o",
                          str(tmp_path / "no" / "such" / "r.html"))
    assert code == 2 and "-o" in err and "existing directory" in err
    assert not (tmp_path / "no").exists()
    # a reference chip the model cannot evaluate (no TDP in the catalog) is named, not fatal
    code, _out, err = run("report", str(report_html.parent / "run"), "-o",
                          str(tmp_path / "groq.html"), "--against", "groq-lpu")
    assert code == 0, err
    assert "groq-lpu: not evaluated" in (tmp_path / "groq.html").read_text(encoding="utf-8")
    # a directory as -o: the report goes inside it, no temp file is left anywhere
    code, out, err = run("report", str(report_html.parent / "run"), "-o", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "report.html").is_file() and str(tmp_path / "report.html") in out
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.parent.glob(".*.tmp"))


def test_inspect_script_runs_on_the_run(report_html: Path) -> None:
    """scripts/inspect_run.py, the notebook-style tour the README points to, runs as is."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "inspect_run.py"),
                           str(report_html.parent / "run")], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front (" in proc.stdout and "one parameter at a time" in proc.stdout


def test_sensitivity_picker_shows_each_best_design(report_html: Path, tmp_path: Path) -> None:
    """Without --design the report has one sensitivity chart per objective's best design and
    a picker; picking the second shows its chart, drawn, and hides the first."""
    bh.require_browser()
    text = report_html.read_text(encoding="utf-8")
    charts = re.findall(r'id="(plot-sensitivity-\d+)"', text)
    options = re.findall(r'<option value="(\d+)">', text)
    assert charts and len(options) == len(charts) + 1  # the first chart is plot-sensitivity
    second = charts[0]
    rep = bh.check_page(
        report_html, {"second": f"#{second} .barlayer .point",
                      "first_hidden": "#plot-sensitivity .barlayer .point"},
        tmp_path / "picked.png", wait_ms=15000,
        interact=lambda page: page.select_option("#sens-pick", "1"))
    drawn = [w > 0 and h > 0 for w, h in rep.sizes["second"]]  # (a 0 % change is a 0-wide bar)
    assert len(drawn) >= 3 and sum(drawn) >= 3, rep.sizes["second"]
    assert not any(w > 0 and h > 0 for w, h in rep.sizes["first_hidden"]), rep
    assert not rep.console_errors and not rep.page_errors, rep


def test_a_run_with_no_feasible_trial_still_gets_a_report(tmp_path: Path) -> None:
    """Every design over a 1 W TDP limit: no front, but the report says why trials failed,
    and --design shows the sensitivity of a failed trial."""
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    text = text.replace('search_space = "../search_spaces/quickstart.toml"',
                        f'search_space = "{REPO / "search_spaces" / "quickstart.toml"}"')
    text = text.replace("tdp_w = { max = 1200.0 }", "tdp_w = { max = 1.0 }")
    assert "tdp_w = { max = 1.0 }" in text
    (tmp_path / "exp.toml").write_text(text, encoding="utf-8")
    code, _out, err = run("search", str(tmp_path / "exp.toml"), "--trials", "32", "--out",
                          str(tmp_path / "run"), "--no-progress")
    assert code == 0, err
    out = tmp_path / "report.html"
    code, _out, err = run("report", str(tmp_path / "run"), "-o", str(out))
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert "none of the 32 trials is feasible" in page
    assert 'id="plot-infeasible"' in page and "tdp_w" in page
    assert 'id="plot-front2d"' not in page and 'id="plot-sensitivity"' not in page
    code, _out, err = run("report", str(tmp_path / "run"), "-o", str(out), "--design", "3")
    assert code == 0, err
    assert 'id="plot-sensitivity"' in out.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- issue 13


def test_report_labels_the_reference_and_keeps_bounds(report_html: Path) -> None:
    """Issue 13: the report showed ``tdp_w > #`` instead of the bound, and did not say what
    "vs CHIP" meant; it now names the projection and its changes, the bounds, and which way
    each sensitivity bar is better."""
    from codesign.results.compare import BASELINE_MEANING
    from codesign.results.report import HYPERVOLUME_AXIS

    text = report_html.read_text(encoding="utf-8")
    assert f"vs h100-sxm {BASELINE_MEANING}: " in text
    assert "n_compute_dies > #" not in text and "tdp_w > #" not in text
    assert "n_compute_dies \\u003e 1" in text  # the bound, as Plotly's JSON writes ">"
    assert "is better)" in text and HYPERVOLUME_AXIS in text and "0-1" in HYPERVOLUME_AXIS


def test_a_plot_never_lists_a_baseline_it_does_not_draw() -> None:
    """Issue 13: a reference chip without a price vanished from the cost plots while the
    legend listed it. A chip is drawn (and listed) only where it has both coordinates, and
    a note names what it lacks."""
    from types import SimpleNamespace

    import pandas as pd

    from codesign.results import report

    objs = [("tokens_per_s", "maximize"), ("cost_per_mtoken_usd", "minimize"),
            ("silicon_mm2", "minimize")]
    run = SimpleNamespace(objectives=objs)
    pts = pd.DataFrame({"trial": [1, 2, 3], "tokens_per_s": [1.0, 2.0, 3.0],
                        "cost_per_mtoken_usd": [3.0, 2.0, 1.5], "silicon_mm2": [5.0, 6.0, 7.0]})
    docs = [{"baseline": {"id": chip, "feasible": True,
                          "metrics": {"tokens_per_s": 2.5, "cost_per_mtoken_usd": cost,
                                      "silicon_mm2": 6.5}}}
            for chip, cost in (("priced", 2.2), ("unpriced", None))]
    refs = report._reference_points(run, docs)
    assert list(refs["chip"]) == ["priced", "unpriced"]
    notes = report._undrawn_notes(run, refs)
    assert notes == ["unpriced: not drawn on plots over cost_per_mtoken_usd (no value for it)"]
    for fig in (report._front_2d(run, pts, pts, refs), report._front_3d(run, pts, pts, refs)):
        drawn = [t for t in fig.data if t.name == report.REFERENCE_NAME]
        assert drawn
        for t in drawn:  # every chip a trace names is a point it draws
            coords = [t.x, t.y] + ([t.z] if getattr(t, "z", None) is not None else [])
            assert all(len(c) == len(t.text) for c in coords)
            assert all(math.isfinite(v) for c in coords for v in c)
        assert sum(t.showlegend is not False for t in drawn) == 1  # listed once
    shown_3d = [t for t in report._front_3d(run, pts, pts, refs).data
                if t.name == report.REFERENCE_NAME]
    assert [list(t.text) for t in shown_3d] == [["priced"]]  # 3-D needs the cost axis
    # the pair (tokens/s, area) can draw both: the unpriced chip appears there, and only there
    fig = report._front_2d(run, pts, pts, refs.assign(
        cost_per_mtoken_usd=[math.nan, math.nan]))
    drawn = [t for t in fig.data if t.name == report.REFERENCE_NAME]
    assert [list(t.text) for t in drawn] == [["priced", "unpriced"]]
    assert drawn[0].showlegend is not False
    nothing = report._front_2d(run, pts, pts, refs.iloc[:0])
    assert not [t for t in nothing.data if t.name == report.REFERENCE_NAME]
