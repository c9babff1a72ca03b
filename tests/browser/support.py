"""What the browser tests share: Debian's Chromium under Playwright, signing in through the
console's own form, screenshots at one size, and an estate with a simulated fleet so the
pages have something to show.

Playwright cannot download its own browser build on these machines (only PyPI and Debian's
mirrors answer), so it drives Debian's package `chromium` (Makefile TEST_PACKAGES)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from weakref import WeakKeyDictionary

from playwright.async_api import Browser, Page, Playwright, Request, ViewportSize

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts.approval import UPDATE_STATES
from services.cli.common import ApiClient
from services.cli.demo import build_estate
from services.simulator.fleet import Fleet
from tests.integration.test_catalog_msrc import FEB, JAN, import_request
from tests.support.messages import eventually
from tests.support.system import System

CHROMIUM = Path(os.environ.get("LOCKGATE_CHROMIUM", "/usr/bin/chromium"))
"""Debian's build (package `chromium`); LOCKGATE_CHROMIUM points elsewhere."""
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Nothing but the console under test is contacted: no update checks, field trials,
    # component downloads or sync (the machines reach no other host anyway).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 800
VIEWPORT: ViewportSize = {"width": WIDTH, "height": HEIGHT}
TIMEOUT_MS = 10_000
"""How long one page action or expectation waits: a page answers in well under a second,
so a failure shows in seconds rather than Playwright's default 30."""

SIGNIN_SUBMIT = "#signin button:not([type=button]):not([type=reset]), #signin [type=submit]"
"""The sign-in form's submit button, however it is written."""

_default_screens: Path | None = None


async def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from Debian's package, with a fresh profile of Playwright's own."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test-packages` installs Debian's chromium "
            "(or set LOCKGATE_CHROMIUM to a Chromium binary)"
        )
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


def use_default_screens_dir(path: Path) -> None:
    """Where shot() writes when LOCKGATE_SCREENS_DIR is not set (conftest: pytest's tmp)."""
    global _default_screens  # noqa: PLW0603 - one folder for the whole session
    _default_screens = path


def screens_dir() -> Path:
    """LOCKGATE_SCREENS_DIR (`make screens`: docs/screens), else the session's tmp folder."""
    chosen = os.environ.get("LOCKGATE_SCREENS_DIR")
    if chosen:
        path = Path(chosen)
    elif _default_screens is not None:
        path = _default_screens
    else:
        raise RuntimeError("no screens folder: set LOCKGATE_SCREENS_DIR")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Requests:
    """The page's requests still in flight, and when the last one ended."""

    def __init__(self, page: Page) -> None:
        self.open: set[Request] = set()
        self.quiet_since = time.monotonic()
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Request) -> None:
        self.open.add(request)

    def _ended(self, request: Request) -> None:
        self.open.discard(request)
        if not self.open:
            self.quiet_since = time.monotonic()


_watched: WeakKeyDictionary[Page, Requests] = WeakKeyDictionary()


def watch(page: Page) -> None:
    """Follow the page's requests, so settle() can wait until none is in flight."""
    _watched[page] = Requests(page)


async def settle(page: Page, *, quiet: float = 0.3, limit: float = 5.0) -> None:
    """Wait until the page has drawn: no element says aria-busy (the console's shell marks
    #view so while a page renders: services/console/static/js/app.js) and, on a watched page,
    no request has been in flight for `quiet` seconds. After `limit` seconds of requests (a
    page that polls) it goes on: this is for pictures, a test asserts what it waits for."""
    await page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    requests = _watched.get(page)
    if requests is None:
        return
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        if not requests.open and time.monotonic() - requests.quiet_since >= quiet:
            break
        await asyncio.sleep(0.05)
    await page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")


async def shot(page: Page, name: str, *, viewport: ViewportSize = VIEWPORT) -> Path:
    """A PNG of what the page shows at 1280x800 (or `viewport`: a narrow window), as
    `<screens dir>/<name>.png`; its path.

    It waits for the page to settle first; animations are finished and the caret hidden, so
    the same page gives the same picture."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError(f"screen name {name!r}: lower-case letters, digits, - and _ only")
    if page.viewport_size != viewport:
        await page.set_viewport_size(viewport)
    await settle(page)
    await page.evaluate("document.fonts.ready")
    path = screens_dir() / f"{name}.png"
    await page.screenshot(path=path, animations="disabled", caret="hide")
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


async def sign_in(page: Page, token: str) -> None:
    """Sign in through the console's form at `/` (the page's base URL) as a person would,
    and wait for the navigation that follows."""
    await page.goto("/")
    await page.locator("#token").fill(token)
    await page.locator(SIGNIN_SUBMIT).first.click()
    await page.locator("nav#menu").wait_for(state="visible")


# The estate: the `make run` demo's groups, policy and rules (services/cli/demo.py) over the
# repository's January and February 2026 MSRC documents, and a small simulated fleet.

PLACES = (("Pilot", 6), ("Workstations", 20), ("Servers", 10))
"""Where the fleet's computers go, in order of their ids."""
COMPUTERS = sum(count for _, count in PLACES)


@dataclass(frozen=True)
class Estate:
    """The running system with its fleet, and a token for each role."""

    system: System
    fleet: Fleet
    admin_token: str
    viewer_token: str

    @property
    def url(self) -> str:
        return self.system.console_url


async def populate(system: System, fleet: Fleet) -> None:
    """Catalog, estate, fleet placed in its groups, and the first installs reported."""
    api = ApiClient(system.http)
    published = 0
    for document in (JAN, FEB):
        published += (await api.call(c.IMPORT_DOCUMENT, import_request(document))).published

    async def approval_knows_the_catalog() -> bool:
        listed = await api.call(a.LIST_UPDATES, a.ListUpdates(states=list(UPDATE_STATES), limit=1))
        return listed.total >= published

    # The demo's rules are run once created: they approve what approval knows by then.
    await eventually(
        approval_knows_the_catalog, timeout=60, what="approval learning the catalog", every=0.5
    )
    await build_estate(api)
    await fleet.start()
    computers = sorted(fleet.agents)

    async def registered() -> bool:
        tree = await api.call(a.LIST_GROUPS, a.ListGroups())
        return tree.groups[0].computers >= len(computers)

    await eventually(registered, timeout=60, what="every simulated computer registered", every=0.5)
    start = 0
    for group, count in PLACES:
        await api.call(
            a.CHANGE_MEMBERSHIP,
            a.ChangeMembership(computers=computers[start : start + count], group=group),
        )
        start += count

    async def installs_reported() -> bool:
        summary = await api.call(r.SUMMARY, r.Summary())
        return (
            summary.computers >= len(computers)
            and summary.totals is not None
            and summary.totals.installed > 0
        )

    await eventually(installs_reported, timeout=90, what="the first installs reported", every=1)
