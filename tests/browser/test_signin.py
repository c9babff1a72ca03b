"""Signing in to the console (services/console/static/index.html): the form at `/`, a wrong
token refused on the page, and the admin's and a viewer's tokens each let in to the pages'
navigation."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.support import SIGNIN_SUBMIT, Estate, shot


async def test_the_console_opens_on_a_signin_form(console_page: Page) -> None:
    response = await console_page.goto("/")
    assert response is not None
    assert response.status == 200, f"GET / answered {response.status}"
    await expect(console_page.locator("form#signin")).to_be_visible()
    await expect(console_page.locator("#signin #token")).to_be_visible()
    await expect(console_page.locator(SIGNIN_SUBMIT).first).to_be_visible()
    await expect(console_page.locator("nav#menu")).to_be_hidden()
    await shot(console_page, "signin")


async def test_a_wrong_token_is_refused_on_the_page(console_page: Page) -> None:
    await console_page.goto("/")
    await console_page.locator("#token").fill("lg_not_a_token_of_this_console")
    await console_page.locator(SIGNIN_SUBMIT).first.click()
    error = console_page.locator("#signin-error")
    await expect(error).to_be_visible()
    await expect(error).not_to_be_empty()
    await expect(console_page.locator("nav#menu")).to_be_hidden()
    await expect(console_page.locator("form#signin")).to_be_visible()
    await shot(console_page, "signin-refused")


async def test_the_admin_token_signs_in_to_the_navigation(
    console_page: Page, estate: Estate
) -> None:
    await console_page.goto("/")
    await console_page.locator("#token").fill(estate.admin_token)
    await console_page.locator(SIGNIN_SUBMIT).first.click()
    menu = console_page.locator("nav#menu")
    await expect(menu).to_be_visible()
    links = menu.locator("a[href]")
    await expect(links.first).to_be_visible()
    assert await links.count() >= 2, "a menu of pages"
    await expect(console_page.locator("#signin-error")).to_be_hidden()
    await shot(console_page, "signed-in-admin")


async def test_a_viewer_token_signs_in_too(viewer_page: Page) -> None:
    menu = viewer_page.locator("nav#menu")
    await expect(menu).to_be_visible()
    await expect(menu.locator("a[href]").first).to_be_visible()
