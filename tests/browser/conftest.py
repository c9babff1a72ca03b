"""Browser tests of the console's pages: one system, one simulated fleet and one headless
Chromium for the whole folder, a fresh browser context (cookies, storage) for each test.

Every test here is marked `browser` and runs in the folder's own event loop (the system,
fleet and browser fixtures live in it), whatever its module says: see
pytest_collection_modifyitems. Run them alone with `.venv/bin/pytest tests/browser`;
`make screens` writes their screenshots (support.shot) to docs/screens.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from pytest_asyncio import is_async_test

from libs.bus import Bus
from libs.service.clock import SpeedClock
from services.simulator.fleet import Fleet, Options
from tests.browser import support
from tests.browser.support import COMPUTERS, TIMEOUT_MS, VIEWPORT, Estate
from tests.support.infra import Infra, own_vhost
from tests.support.system import running_system

HERE = Path(__file__).parent
expect.set_options(timeout=TIMEOUT_MS)
SPEED = 3600.0
"""An hour a second, as in tests/integration/test_end_to_end.py: Pilot's as-soon-as-possible
installs land within seconds, and a one-week deadline passes in under three minutes."""
FLEET = Options(
    computers=COMPUTERS,
    prefix="web",
    offline_rate=0.02,
    failure_rate=0.05,
    silent_rate=0.06,
    silent_after=timedelta(hours=6),
    mute_rate=0.03,
)
"""Like the demo's fleet (services/cli/demo.py), smaller: some failures, a few computers that
go silent (not reporting after NOT_REPORTING_DAYS) and a few that never report (no status)."""
NOT_REPORTING_DAYS = "1"
"""A simulated day, 24 s here: silent computers show as not reporting while the suite runs."""


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    package_loop = pytest.mark.asyncio(loop_scope="package")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            if is_async_test(item):
                item.add_marker(package_loop, append=False)


@pytest.fixture(scope="package", autouse=True)
def _screens(tmp_path_factory: pytest.TempPathFactory) -> None:
    """support.shot() writes under pytest's tmp folder unless LOCKGATE_SCREENS_DIR says."""
    support.use_default_screens_dir(tmp_path_factory.mktemp("screens"))


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium (Debian's) for the folder."""
    async with async_playwright() as playwright:
        launched = await support.launch(playwright)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def estate(
    infra: Infra, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Estate]:
    """The whole system as processes on a vhost and a database of their own (never meeting
    an event another test left queued), the demo's estate over the repository's MSRC
    documents, and a simulated fleet in it, started once for the folder; an admin token (the
    system's bootstrap token) and a viewer's."""
    with own_vhost(infra, "browser") as mine:
        async with _estate(mine, log_dir, tmp_path_factory) as made:
            yield made


@asynccontextmanager
async def _estate(
    infra: Infra, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Estate]:
    epoch = datetime.now(UTC)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-browser-tests", delivery_limit=5)
    try:
        await bus.declare_exchanges()
        fleet = Fleet(bus, SpeedClock(epoch, SPEED), FLEET)
        async with running_system(
            infra,
            log_dir,
            tmp_path_factory.mktemp("content"),
            epoch=epoch,
            speed=SPEED,
            extra_env={"LOCKGATE_NOT_REPORTING_DAYS": NOT_REPORTING_DAYS},
        ) as system:
            try:
                await support.populate(system, fleet)
                viewer = await system.ok(
                    "POST", "/tokens", json={"name": "browser tests (viewer)", "role": "viewer"}
                )
                admin = system.http.headers["Authorization"].removeprefix("Bearer ")
                yield Estate(system, fleet, admin, viewer["token"])
            finally:
                await fleet.stop()
    finally:
        await bus.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed test, so its page fixture saves what the page showed."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="package")
def failed_screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a failed test's page is saved (never docs/screens)."""
    return tmp_path_factory.mktemp("failed-screens")


async def _context(browser: Browser, base_url: str | None = None) -> BrowserContext:
    context = await browser.new_context(
        viewport=VIEWPORT,
        base_url=base_url,
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


@asynccontextmanager
async def _page(
    context: BrowserContext, request: pytest.FixtureRequest, failed_screens: Path
) -> AsyncIterator[Page]:
    """A page in its own context. An uncaught script error in it fails the test; when the
    test fails, a screenshot of the page is saved and its path printed."""
    page = await context.new_page()
    support.watch(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    try:
        yield page
        if request.node.stash.get(FAILED, False):
            path = failed_screens / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")
            await page.screenshot(path=path)
            print(f"the page when {request.node.name} failed: {path} ({page.url})")
    finally:
        await context.close()
    assert not errors, f"uncaught errors in the page's scripts: {errors}"


@pytest_asyncio.fixture(loop_scope="package")
async def blank_page(
    browser: Browser, request: pytest.FixtureRequest, failed_screens: Path
) -> AsyncIterator[Page]:
    """A page with no base URL and no system behind it (for the harness's own tests)."""
    async with _page(await _context(browser), request, failed_screens) as page:
        yield page


@pytest_asyncio.fixture(loop_scope="package")
async def console_page(
    browser: Browser, estate: Estate, request: pytest.FixtureRequest, failed_screens: Path
) -> AsyncIterator[Page]:
    """A page on the console, not signed in (relative URLs go to the console)."""
    async with _page(await _context(browser, estate.url), request, failed_screens) as page:
        yield page


@pytest_asyncio.fixture(loop_scope="package")
async def admin_page(
    browser: Browser, estate: Estate, request: pytest.FixtureRequest, failed_screens: Path
) -> AsyncIterator[Page]:
    """A page on the console, signed in with the admin token through the sign-in form."""
    async with _page(await _context(browser, estate.url), request, failed_screens) as page:
        await support.sign_in(page, estate.admin_token)
        yield page


@pytest_asyncio.fixture(loop_scope="package")
async def viewer_page(
    browser: Browser, estate: Estate, request: pytest.FixtureRequest, failed_screens: Path
) -> AsyncIterator[Page]:
    """A page on the console, signed in with a viewer token (read only)."""
    async with _page(await _context(browser, estate.url), request, failed_screens) as page:
        await support.sign_in(page, estate.viewer_token)
        yield page
