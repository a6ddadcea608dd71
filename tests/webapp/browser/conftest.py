"""Real-browser tests: Playwright driving Debian's chromium (scripts/test.sh installs it with apt).

Every test that takes `page` runs at a desktop and a 390 px phone width; `shot(name)` saves a screenshot
of the screen as it is to test-artifacts/<test>/<width>-<name>.png on every run (not only on failure),
so a reviewer can look at each screen. A failing test also leaves `<width>-failed.png`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


_SHARED: dict = {}  # one chromium per test process, also when another conftest imports this fixture


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if "browser" in _SHARED:  # a second copy of the fixture (tests/security imports it): Playwright starts once
        yield _SHARED["browser"]
        return
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"],
        )
        _SHARED["browser"] = browser
        yield browser
        _SHARED.clear()
        browser.close()


@pytest.fixture(params=list(VIEWPORTS))
def width(request) -> str:
    """The viewport a test runs at: "desktop" (1280 px) or "phone" (390 px)."""
    return request.param


def _artifact_dir(request) -> Path:
    folder = ARTIFACTS / re.sub(r"\[.*\]$", "", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, request, width: str) -> Iterator:
    """A fresh page at `width` that records Content-Security-Policy violations in `page.csp_violations`."""
    context = browser.new_context(viewport=VIEWPORTS[width], **_context_options(request))
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script("""window.__csp = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));""")
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(_artifact_dir(request) / f"{width}-failed.png"), full_page=True)
    context.close()


def _context_options(request) -> dict:
    marker = request.node.get_closest_marker("color_scheme")
    return {"color_scheme": marker.args[0]} if marker else {}


@pytest.fixture
def shot(page, request, width: str) -> Callable[[str], Path]:
    """Save a screenshot of what is on screen now as test-artifacts/<test>/<width>-<name>.png."""

    def take(name: str, full_page: bool = False) -> Path:
        path = _artifact_dir(request) / f"{width}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__csp")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "color_scheme(scheme): the browser's preferred colour scheme")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
