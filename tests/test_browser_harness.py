"""The headless-Chromium harness (browser_helpers) catches what it is meant to catch.

Each browser test writes a tiny page to tmp_path and checks that :func:`check_page` reports
exactly the fault planted in it (and, for the good page, none). Needs Chromium
(scripts/chromium.sh; scripts/test.sh runs it) and the playwright and pillow packages; the
browser tests are skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import browser_helpers
import pytest

GOOD_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Harness fixture</title>
<style>body { margin: 0; background: #fff; font-family: sans-serif; }</style>
</head><body>
<h1>Pareto front</h1>
<div id="plot-front">
  <svg class="main-svg" width="400" height="300" xmlns="http://www.w3.org/2000/svg">
    <rect x="0" y="0" width="400" height="300" fill="#f0f4ff"/>
    <circle cx="80" cy="220" r="12" fill="#1f77b4"/>
    <circle cx="200" cy="140" r="12" fill="#ff7f0e"/>
    <circle cx="320" cy="60" r="12" fill="#2ca02c"/>
    <polyline points="80,220 200,140 320,60" stroke="#d62728" stroke-width="4" fill="none"/>
  </svg>
</div>
<canvas id="bars" width="400" height="200"></canvas>
<script src="draw.js"></script>
</body></html>
"""

# A sibling file loaded by relative URL: local resources must not be blocked.
DRAW_JS = """
const ctx = document.getElementById("bars").getContext("2d");
ctx.fillStyle = "#9467bd";
[40, 120, 80, 160].forEach((h, i) => ctx.fillRect(20 + i * 90, 200 - h, 60, h));
document.body.dataset.drawn = "yes";
"""

FILLER = '<div id="content" style="width:300px;height:120px;background:#345">content</div>'


def page(tmp_path: Path, body: str, head: str = "") -> Path:
    """Write a minimal HTML page with ``body`` (and ``head``) to tmp_path; return its path."""
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{head}</head>"
                    f"<body style='margin:0;background:#fff'>{body}</body></html>")
    return path


@pytest.fixture
def chromium() -> str:
    """The Chromium path; skips the test (naming scripts/chromium.sh) when there is none."""
    return browser_helpers.require_browser()


def test_good_page_passes(tmp_path: Path, chromium: str) -> None:
    html = tmp_path / "good.html"
    html.write_text(GOOD_PAGE)
    (tmp_path / "draw.js").write_text(DRAW_JS)
    shot = tmp_path / "shots" / "good.png"
    report = browser_helpers.check_page(
        html,
        {"front": "#plot-front .main-svg", "points": "#plot-front circle",
         "bars": "canvas#bars", "drawn": "body[data-drawn=yes]"},
        shot, executable=chromium)
    assert report.problems() == []
    assert report.title == "Harness fixture"
    assert report.url == html.resolve().as_uri()
    assert report.counts == {"front": 1, "points": 3, "bars": 1, "drawn": 1}
    assert all(report.visible.values()), report.sizes
    assert report.sizes["front"] == [(400.0, 300.0)]
    assert report.console_errors == report.page_errors == report.blocked_requests == []
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    assert report.nonblank_fraction > 0.05
    assert report.distinct_colours > 5
    assert not report.blank


def test_script_error_is_a_page_error(tmp_path: Path, chromium: str) -> None:
    html = page(tmp_path, FILLER + """<script>
      setTimeout(() => { throw new TypeError("late-boom-7"); }, 50);
      throw new Error("boom-123");
    </script>""")
    report = browser_helpers.check_page(html, {"content": "#content"}, tmp_path / "s.png",
                                        executable=chromium)
    assert any("boom-123" in e for e in report.page_errors), report.page_errors
    # Thrown from a timer after the load event: still caught.
    assert any("TypeError: late-boom-7" in e for e in report.page_errors), report.page_errors
    assert report.counts["content"] == 1
    assert any("page error" in p for p in report.problems())


def test_console_error_is_reported(tmp_path: Path, chromium: str) -> None:
    html = page(tmp_path, FILLER + """<script>
      console.log("just info");
      console.warn("just a warning");
      console.error("bad-thing-42");
    </script>""")
    report = browser_helpers.check_page(html, {"content": "#content"}, tmp_path / "s.png",
                                        executable=chromium)
    assert len(report.console_errors) == 1, report.console_errors
    assert "bad-thing-42" in report.console_errors[0]
    assert report.page_errors == []
    assert report.blocked_requests == []
    assert report.problems() == [f"console error: {report.console_errors[0]}"]


def test_remote_requests_are_blocked_and_recorded(tmp_path: Path, chromium: str) -> None:
    html = page(
        tmp_path,
        FILLER + """<img src="http://example.org/logo.png" alt="">
        <script>
          window.cdnLoaded = false;
          fetch("https://api.example.net/data.json").catch(() => {});
        </script>""",
        head='<script src="https://cdn.example.com/x.js" onload="window.cdnLoaded=true">'
             "</script>")
    report = browser_helpers.check_page(html, {"content": "#content"}, tmp_path / "s.png",
                                        executable=chromium)
    assert "https://cdn.example.com/x.js" in report.blocked_requests
    assert "http://example.org/logo.png" in report.blocked_requests
    assert "https://api.example.net/data.json" in report.blocked_requests
    assert all(not url.startswith("file:") for url in report.blocked_requests)
    assert any("blocked request: https://cdn.example.com/x.js" == p for p in report.problems())


def test_blank_page_is_blank(tmp_path: Path, chromium: str) -> None:
    html = page(tmp_path, "")
    report = browser_helpers.check_page(html, {}, tmp_path / "blank.png", executable=chromium)
    assert report.console_errors == report.page_errors == report.blocked_requests == []
    assert report.nonblank_fraction == 0.0
    assert report.distinct_colours == 1
    assert report.blank
    problems = report.problems()
    assert len(problems) == 1 and "is blank" in problems[0], problems


def test_missing_and_hidden_selectors(tmp_path: Path, chromium: str) -> None:
    html = page(tmp_path, FILLER + '<div id="hidden" style="display:none">x</div>'
                                   '<div class="empty"></div>')
    report = browser_helpers.check_page(
        html,
        {"content": "#content", "missing": "#plot-front .main-svg", "hidden": "#hidden",
         "empty": "div.empty"},
        tmp_path / "s.png", wait_ms=300, executable=chromium)
    assert report.counts == {"content": 1, "missing": 0, "hidden": 1, "empty": 1}
    assert report.visible == {"content": True, "missing": False, "hidden": False,
                              "empty": False}
    assert report.sizes["content"] == [(300.0, 120.0)]
    problems = report.problems()
    assert "selector 'missing' matched nothing" in problems
    assert any(p.startswith("selector 'hidden' matched elements with an empty box")
               for p in problems)
    assert any(p.startswith("selector 'empty'") for p in problems)
    assert not any("'content'" in p for p in problems)


def test_screenshot_stats_measures_background(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    flat = tmp_path / "flat.png"
    image_module.new("RGB", (40, 10), "white").save(flat)
    assert browser_helpers.screenshot_stats(flat) == (0.0, 1)
    quarter = image_module.new("RGB", (40, 10), "white")
    quarter.paste((0, 0, 0), (0, 0, 10, 10))  # a quarter of the pixels are black
    quarter.paste((255, 0, 0), (10, 0, 12, 10))  # and a twentieth red
    path = tmp_path / "quarter.png"
    quarter.save(path)
    fraction, colours = browser_helpers.screenshot_stats(path)
    assert fraction == pytest.approx(0.30)
    assert colours == 3


def test_chromium_path_prefers_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CODESIGN_CHROMIUM", str(fake))
    assert browser_helpers.chromium_path() == str(fake)
    fake.chmod(stat.S_IRUSR)  # not executable: ignored, falls back to the system one
    assert browser_helpers.chromium_path() != str(fake)
    if os.access(browser_helpers.SYSTEM_CHROMIUM, os.X_OK):
        assert browser_helpers.chromium_path() == str(browser_helpers.SYSTEM_CHROMIUM)
