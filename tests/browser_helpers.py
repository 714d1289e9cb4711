"""Check an HTML page in a real headless Chromium, offline.

The tests drive Debian's Chromium (installed by ``scripts/chromium.sh``, which
``scripts/test.sh`` runs and whose path it exports as ``CODESIGN_CHROMIUM``) through the
``playwright`` package; ``playwright install`` is never used. :func:`check_page` opens a local
file, aborts and records every request that would leave the machine, collects console errors
and uncaught page errors, counts the elements each selector matches and whether they have a
non-zero box, takes a full-page screenshot and measures how much of it is not background.

Typical use in a test::

    import browser_helpers

    def test_report(tmp_path):
        browser_helpers.require_browser()
        report = browser_helpers.check_page(
            tmp_path / "report.html", {"front": "#plot-front .main-svg"}, tmp_path / "shot.png")
        assert not report.problems(), report.problems()
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import ConsoleMessage, Page, Route, WebSocket
    from playwright.sync_api import Error as PlaywrightError

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "chromium.sh"
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")

#: Flags known to work here: running as root, in a container, with no network.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: URL schemes a page may load; a request for any other is aborted and recorded.
LOCAL_SCHEMES: tuple[str, ...] = ("file:", "data:", "blob:", "about:")

SKIP_HINT = ("run `bash scripts/chromium.sh` (scripts/test.sh does, and exports "
             "CODESIGN_CHROMIUM) and `pip install -e '.[dev]'`")


@dataclass
class PageReport:
    """What :func:`check_page` saw on one page.

    ``counts[name]`` is how many elements ``selectors[name]`` matched, ``sizes[name]`` their
    (width, height) in CSS pixels, and ``visible[name]`` is true when there was at least one
    match and every match has a non-zero width and height. ``nonblank_fraction`` is the
    fraction of screenshot pixels that differ from its most common colour (the background).
    """

    url: str
    title: str
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    visible: dict[str, bool] = field(default_factory=dict)
    sizes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    nonblank_fraction: float = 0.0
    distinct_colours: int = 0

    @property
    def blank(self) -> bool:
        """True when the screenshot is a single flat colour."""
        return self.distinct_colours <= 1

    def problems(self, min_nonblank: float = 0.005) -> list[str]:
        """Every reason to call the page broken, as readable lines; empty when it looks fine.

        A page is broken when it logged a console error, threw an uncaught error, tried to
        load anything that is not local, has a selector with no match or a match with an
        empty box, or when less than ``min_nonblank`` of its screenshot is not background.
        """
        found = [f"console error: {text}" for text in self.console_errors]
        found += [f"page error: {text}" for text in self.page_errors]
        found += [f"blocked request: {url}" for url in self.blocked_requests]
        for name, count in self.counts.items():
            if count == 0:
                found.append(f"selector {name!r} matched nothing")
            elif not self.visible.get(name, False):
                found.append(f"selector {name!r} matched elements with an empty box: "
                             f"{self.sizes.get(name)}")
        if self.nonblank_fraction < min_nonblank:
            found.append(f"screenshot {self.screenshot} is blank: only "
                         f"{self.nonblank_fraction:.4%} of pixels differ from the background "
                         f"({self.distinct_colours} distinct colours)")
        return found


def playwright_available() -> bool:
    """True when the ``playwright`` and ``PIL`` (Pillow) packages can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("playwright", "PIL"))


def _executable(path: str | Path | None) -> str | None:
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def chromium_path(install: bool = False) -> str | None:
    """Path of the Chromium to drive, or None when there is none.

    Looks at ``$CODESIGN_CHROMIUM`` (set by scripts/test.sh from scripts/chromium.sh), then
    /usr/bin/chromium, then ``chromium`` on the PATH. With ``install=True`` and none found, runs
    scripts/chromium.sh (which apt-get installs it) and uses the path it prints.
    """
    for candidate in (os.environ.get("CODESIGN_CHROMIUM"), SYSTEM_CHROMIUM,
                      shutil.which("chromium")):
        found = _executable(candidate)
        if found:
            return found
    if not install:
        return None
    try:
        done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                              timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return _executable(lines[-1]) if done.returncode == 0 and lines else None


def require_browser() -> str:
    """Return the Chromium path, or skip the calling test saying how to get one.

    With ``CODESIGN_REQUIRE_BROWSER=1`` in the environment the test fails instead of skipping,
    for runs where a silently skipped browser check would hide a broken setup.
    """
    import pytest

    strict = os.environ.get("CODESIGN_REQUIRE_BROWSER") == "1"
    give_up = pytest.fail if strict else pytest.skip
    if not playwright_available():
        give_up(f"the playwright and pillow packages are not installed: {SKIP_HINT}")
    path = chromium_path()
    if path is None:
        give_up(f"Chromium not found (CODESIGN_CHROMIUM, {SYSTEM_CHROMIUM}, PATH): {SKIP_HINT}")
    assert path is not None
    return path


def screenshot_stats(png: Path) -> tuple[float, int]:
    """(fraction of pixels unlike the most common colour, number of distinct colours) of a PNG."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        colours = rgb.getcolors(maxcolors=total) or []
    if total == 0 or not colours:
        return 0.0, 0
    background = max(count for count, _ in colours)
    return 1.0 - background / total, len(colours)


_BOXES_JS = """els => els.map(e => {
  const r = e.getBoundingClientRect();
  return [r.width, r.height];
})"""


def check_page(
    html: Path,
    selectors: dict[str, str],
    screenshot: Path,
    wait_ms: int = 5000,
    *,
    settle_ms: int = 250,
    viewport: tuple[int, int] = (1280, 800),
    executable: str | None = None,
    interact: Callable[[Page], None] | None = None,
) -> PageReport:
    """Open ``html`` (a local file) in headless Chromium and report what it shows.

    Every request whose URL is not ``file:``, ``data:``, ``blob:`` or ``about:`` is aborted and
    listed in ``blocked_requests`` (WebSocket URLs are listed too). After the load event, waits
    up to ``wait_ms`` in all for each selector (any Playwright selector, e.g. CSS
    ``#plot-front .main-svg``) to match a visible element, then ``settle_ms`` more for late
    errors, then counts and measures the matches and takes a full-page screenshot to
    ``screenshot``. ``executable`` defaults to :func:`chromium_path`. ``interact(page)``, if
    given, runs right after the load (click, select) and before the selectors are waited for.
    Raises FileNotFoundError when ``html`` or Chromium is missing, and playwright's Error for
    a malformed selector; problems of the page itself are reported, never raised.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(html)
    executable = executable or chromium_path()
    if executable is None:
        raise FileNotFoundError(f"no Chromium: {SKIP_HINT}")
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    url = html.as_uri()
    report = PageReport(url=url, title="", screenshot=screenshot)

    def route(route: Route) -> None:
        request_url = route.request.url
        if request_url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            report.blocked_requests.append(request_url)
            route.abort("blockedbyclient")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location or {}
            report.console_errors.append(
                f"{message.text} [{where.get('url', '')}:{where.get('lineNumber', '')}]")

    def page_error(error: PlaywrightError) -> None:
        report.page_errors.append(f"{error.name or 'Error'}: {error.message}")

    def websocket(ws: WebSocket) -> None:
        report.blocked_requests.append(ws.url)

    with tempfile.TemporaryDirectory(prefix="codesign-chromium-") as profile, \
            sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": viewport[0], "height": viewport[1]},
            service_workers="block",
        )
        try:
            context.route("**/*", route)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", console)
            page.on("pageerror", page_error)
            page.on("websocket", websocket)
            page.goto(url, wait_until="load", timeout=max(wait_ms, 30_000))
            if interact is not None:  # e.g. pick an option, then check what it shows
                interact(page)
            deadline = time.monotonic() + wait_ms / 1000
            for selector in selectors.values():
                remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
                try:
                    page.wait_for_selector(selector, state="visible", timeout=remaining_ms)
                except PlaywrightTimeout:
                    pass  # reported below as a count of 0 or an empty box; a malformed
                    # selector raises playwright's Error instead: that is the test's bug
            if settle_ms > 0:
                page.wait_for_timeout(settle_ms)
            for name, selector in selectors.items():
                boxes = page.locator(selector).evaluate_all(_BOXES_JS)
                sizes = [(float(w), float(h)) for w, h in boxes]
                report.sizes[name] = sizes
                report.counts[name] = len(sizes)
                report.visible[name] = bool(sizes) and all(w > 0 and h > 0 for w, h in sizes)
            report.title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    report.nonblank_fraction, report.distinct_colours = screenshot_stats(screenshot)
    return report
