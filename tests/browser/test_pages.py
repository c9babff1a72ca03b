"""Every page of the console renders at 1280x800 with the estate's data: no error box, no
uncaught script error, nothing asked of another origin (no CDN, no web font); a picture of
each for docs/screens (`make screens`). Every page fits a narrow window without scrolling
sideways (the overview and All updates pictured so), and the keyboard reaches sign-in, the
menu and the approve dialog."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Request, Route, ViewportSize, expect

from tests.browser.support import SIGNIN_SUBMIT, Estate, settle, shot, sign_in

NARROW: ViewportSize = {"width": 420, "height": 800}
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
"""URLs that reach no server (the shell's `data:,` icon)."""

PAGES: dict[str, tuple[str, str]] = {
    # screen name: (address, what shows once the page has its data)
    "overview": ("#/overview", "#overview-counts [data-count=computers] a"),
    "updates": ("#/updates", "#update-results tbody tr[data-id]"),
    "update": ("#/updates/{update}", "#update-report [data-count=installed]"),
    "upload": ("#/upload", "#step-files #upload-file"),
    "rules": ("#/rules", "#rules-list tbody tr[data-id]"),
    "rollouts": ("#/rollouts", "#rollouts-list table"),
    "groups": ("#/groups", "#group-members tbody tr[data-id]"),
    "policies": ("#/policies", "#policies-list tbody tr[data-id]"),
    "computers": ("#/computers", "#computers-list tbody tr[data-id]"),
    "computer": ("#/computers/{computer}", "#computer-report [data-count=installed]"),
    "catalog": ("#/catalog", "#catalog-settings input[type=checkbox]"),
    "dead-letters": ("#/dead-letters", "#dead-letter-queues h2"),
    "audit": ("#/audit", "#audit-list tbody tr[data-id]"),
}


def watch_origins(page: Page, console: str) -> list[str]:
    """Every URL the page asks of an origin other than the console's, from now on."""
    own = urlsplit(console)
    foreign: list[str] = []

    def seen(request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme in LOCAL_SCHEMES:
            return
        if (url.scheme, url.netloc) != (own.scheme, own.netloc):
            foreign.append(request.url)

    page.on("request", seen)
    return foreign


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    return errors


async def open_page(page: Page, address: str, ready: str) -> None:
    """Go to a page of the console and wait until it shows its data."""
    await page.goto(f"/{address}")
    await expect(page.locator("#view h1").first).to_be_visible()
    await expect(page.locator(ready).first).to_be_visible()
    await settle(page)


async def addresses(estate: Estate) -> Callable[[str], str]:
    """Fill in the ids of one approved update and one reporting computer."""
    listed = await estate.system.ok(
        "GET", "/updates", params={"states": "approved", "sort": "approved_groups", "limit": 1}
    )
    update = listed["updates"][0]["update_id"]
    computers = await estate.system.ok("GET", "/computers", params={"limit": 1})
    computer = computers["computers"][0]["computer_id"]
    return lambda address: address.format(update=update, computer=computer)


@pytest.mark.parametrize("name", list(PAGES))
async def test_every_page_renders(console_page: Page, estate: Estate, name: str) -> None:
    page = console_page
    foreign = watch_origins(page, estate.url)
    errors = watch_errors(page)
    await sign_in(page, estate.admin_token)
    address, ready = PAGES[name]
    await open_page(page, (await addresses(estate))(address), ready)
    assert page.viewport_size == {"width": 1280, "height": 800}
    await expect(page.locator(".error-box")).to_have_count(0)
    await expect(page.locator("#view")).not_to_contain_text("This page failed")
    await shot(page, name)
    assert not errors, f"uncaught errors on {address}: {errors}"
    assert not foreign, f"{address} asked other origins than the console: {foreign}"


async def test_a_narrow_window_does_not_scroll_sideways(admin_page: Page, estate: Estate) -> None:
    """Every page fits 420 px without a sideways scroll; the overview and All updates are
    pictured so (docs/screens/*-narrow.png)."""
    page = admin_page
    await page.set_viewport_size(NARROW)
    fill = await addresses(estate)
    for name, (address, ready) in PAGES.items():
        await open_page(page, fill(address), ready)
        scroll, window = await page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert window == NARROW["width"]
        assert scroll <= window + 1, f"{address} is {scroll}px wide in a {window}px window"
        if name in ("overview", "updates"):
            await shot(page, f"{name}-narrow", viewport=NARROW)


async def tab_to(page: Page, selector: str, limit: int = 30) -> int:
    """Press Tab until the focused element matches `selector`; how many presses it took."""
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return presses
    raise AssertionError(f"{limit} presses of Tab never reached {selector}")


async def test_the_keyboard_signs_in_and_opens_a_page_from_the_menu(
    console_page: Page, estate: Estate
) -> None:
    page = console_page
    await page.goto("/")
    await expect(page.locator("#token")).to_be_focused()
    await page.evaluate("document.activeElement.blur()")
    await tab_to(page, "#token")
    await page.keyboard.type(estate.admin_token)
    await tab_to(page, SIGNIN_SUBMIT, limit=3)
    await page.keyboard.press("Enter")
    await expect(page.locator("nav#menu")).to_be_visible()
    await expect(page.locator("#overview-counts")).to_be_visible()

    await tab_to(page, 'nav#menu a[href="#/rules"]')
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#/rules$"))
    await expect(page.locator("#view h1")).to_have_text("Auto-approval rules")
    await expect(page.locator('nav#menu a[aria-current="page"]')).to_have_text("Rules")


async def test_the_approve_dialog_closes_on_escape(admin_page: Page) -> None:
    page = admin_page
    await page.goto("/#/updates")
    row = page.locator("#update-results tbody tr[data-id]").first
    await row.locator("td.check input").check()
    await page.locator("#approve-selected").focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("dialog[open]")
    await expect(dialog.locator("input[type=checkbox][data-group]").first).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("dialog")).to_have_count(0)


async def test_a_page_left_while_its_module_loads_does_not_take_the_view(
    console_page: Page, estate: Estate
) -> None:
    """Signing in opens the overview; going on to All updates before the overview's module
    has arrived shows All updates, not the overview once its module comes (js/app.js)."""
    page = console_page
    arrived = asyncio.Event()

    async def slowly(route: Route) -> None:
        await asyncio.sleep(1)  # the network is slow, not the test: this is the route's delay
        await route.continue_()
        arrived.set()

    await page.route("**/js/pages/overview.js", slowly)
    await sign_in(page, estate.admin_token)
    await page.goto("/#/updates")
    await expect(page.locator("#update-filter")).to_be_visible()
    await arrived.wait()
    await settle(page)  # the overview's module and what it imports are in, and evaluated
    await expect(page.locator("#view h1")).to_have_text("All updates")
    await expect(page.locator("#view .page-overview")).to_have_count(0)
