"""The operator's flow in the console, as a newcomer does it in the browser: approve a needed
update for a group (the preview shows what the groups below it inherit and why), see the
approval and the counts move on the update's page as the simulated fleet installs, decline
another update, and upload a real MSI through the eight steps of docs/product.md section 4."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.browser.support import Estate, shot
from tests.support.installers import build_msi

ROWS = "#update-results tbody tr[data-id]"
FLEET_TIMEOUT_MS = 90_000
"""How long the fleet may take to install (an hour a second: a simulated day is 24 s)."""


def shown_date(value: str) -> str:
    """An API instant as the console prints it (ui.js fmtDate): `2026-03-01 12:00 UTC`."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pick_group(groups: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A group with child groups (below All computers when there is one), else any group;
    and every group below it."""
    with_children = [g for g in groups if g["children"]]
    below_root = [g for g in with_children if g["parent_id"]]
    leaves = [g for g in groups if g["parent_id"]]
    group = (below_root or with_children or leaves or groups)[0]
    below: list[dict[str, Any]] = []
    parents = {group["group_id"]}
    while grown := [g for g in groups if g["parent_id"] in parents and g not in below]:
        below += grown
        parents |= {g["group_id"] for g in grown}
    return group, below


async def show_filter(page: Page, value: str, label: str | None = None) -> None:
    """Choose a view of All updates and wait until the list says it shows it (the default
    view, `label` None, names no filter)."""
    await page.locator("#update-filter").select_option(value)
    status = page.locator("#update-status")
    if label is None:
        await expect(status).to_have_text(re.compile(r"^[\d,]+ updates?( matching .*)?\.$"))
    else:
        await expect(status).to_contain_text(f"({label})")


async def first_needed(page: Page) -> tuple[str, Locator]:
    """The first needed (new) update of All updates: its id and row."""
    await page.goto("/#/updates")
    await expect(page.locator("#update-filter")).to_be_visible()
    await show_filter(page, "new", "needed (new)")
    row = page.locator(ROWS).first
    await expect(row).to_be_visible()
    update_id = await row.get_attribute("data-id")
    assert update_id, "a needed update to act on"
    return update_id, page.locator(f'{ROWS}[data-id="{update_id}"]')


async def card_number(card: Locator) -> int:
    return int((await card.inner_text()).replace(",", "").strip())


async def test_approve_a_needed_update_for_a_group_and_watch_it_install(
    admin_page: Page, estate: Estate
) -> None:
    page = admin_page
    groups = (await estate.system.ok("GET", "/groups"))["groups"]
    group, below_it = pick_group(groups)
    name = group["name"]

    update_id, row = await first_needed(page)
    await row.locator("td.check input").check()
    await expect(page.locator("#selection-count")).to_have_text("1 selected")
    await expect(page.locator("#approve-selected")).to_be_enabled()
    await page.locator("#approve-selected").click()

    dialog = page.locator("dialog[open]")
    await expect(dialog).to_be_visible()
    await dialog.locator(f'input[type=checkbox][data-group="{name}"]').check()
    await dialog.locator(f'select[data-action-for="{name}"]').select_option("required_install")
    await dialog.locator(f'select[data-deadline-for="{name}"]').select_option("one_week")
    approve = dialog.locator("[data-action=approve]")
    await expect(approve).to_be_disabled()  # preview first
    await dialog.locator("[data-action=preview]").click()

    preview = dialog.locator("#approve-preview")
    chosen = preview.locator(f'tr[data-group="{name}"][data-update="{update_id}"]')
    await expect(chosen).to_contain_text("explicit here")
    await expect(chosen).to_contain_text("Required install, by")
    await expect(chosen).to_have_class(re.compile(r"\bexplicit\b"))
    for child in below_it:
        below = preview.locator(f'tr[data-group="{child["name"]}"][data-update="{update_id}"]')
        await expect(below).to_contain_text(f"inherited from {name}")
        await expect(below).to_contain_text("Required install, by")
        await expect(below).not_to_have_class(re.compile(r"\bexplicit\b"))
    await shot(page, "approve-preview")

    await expect(approve).to_be_enabled()
    await approve.click()
    await expect(dialog.locator("#approve-result")).to_contain_text("Approved.")
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.locator("dialog[open]")).to_have_count(0)

    # The update's page lists the group's approval with the deadline the API resolved.
    listed = await estate.system.ok("GET", f"/updates/{update_id}/approvals")
    mine = next(g for g in listed["groups"] if g["group_id"] == group["group_id"])
    assert mine["explicit"]["action"] == "required_install"
    assert mine["explicit"]["deadline"]["kind"] == "one_week"
    at = datetime.fromisoformat(mine["explicit"]["deadline"]["at"])
    assert at - datetime.fromisoformat(mine["explicit"]["approved_at"]) == timedelta(weeks=1)
    await page.goto(f"/#/updates/{update_id}")
    approvals = page.locator("#update-approvals")
    here = approvals.locator(f'tr[data-id="{group["group_id"]}"]')
    await expect(here).to_contain_text(name)
    await expect(here).to_contain_text(f"Required install, by {shown_date(at.isoformat())}")
    await expect(here).to_contain_text("explicit here")
    for child in below_it:
        below = approvals.locator(f'tr[data-id="{child["group_id"]}"]')
        await expect(below).to_contain_text("inherits")
        await expect(below).to_contain_text(f"inherited from {name}")

    # The counts move in place as the fleet reports and installs: no reload.
    await page.evaluate("window.__stayed = true")
    installed = page.locator("#update-counts [data-count=installed] .card-value")
    await expect(installed).to_be_visible(timeout=FLEET_TIMEOUT_MS)
    before = await card_number(installed)
    await page.wait_for_function(
        """([before]) => {
            const card = document.querySelector(
                "#update-counts [data-count=installed] .card-value");
            return card && Number(card.textContent.replace(/,/g, "")) > before;
        }""",
        arg=[before],
        timeout=FLEET_TIMEOUT_MS,
    )
    assert await card_number(installed) > before
    assert await page.evaluate("window.__stayed === true"), "the page was not reloaded"
    await approvals.scroll_into_view_if_needed()
    await shot(page, "update-approved")


async def test_decline_an_update_from_the_toolbar(admin_page: Page) -> None:
    page = admin_page
    _, row = await first_needed(page)
    kb = (await row.locator("td").nth(1).inner_text()).strip()
    title = (await row.locator("td").nth(2).inner_text()).strip()
    await show_filter(page, "all")
    await page.locator("#update-search").fill(kb if kb.startswith("KB") else title)
    await expect(row).to_be_visible()
    await row.locator("td.check input").check()
    await page.locator("#decline-selected").click()
    confirm = page.locator("dialog[open]")
    await expect(confirm).to_contain_text("Decline 1 update")
    await confirm.locator("[data-action=confirm]").click()
    await expect(page.locator("#notice")).to_contain_text("Declined 1 update")
    await expect(row).to_have_count(0)  # gone from the default view

    await show_filter(page, "declined", "declined")
    await expect(row).to_be_visible()
    await expect(row.locator("td[data-label=States]")).to_contain_text("declined")


async def test_upload_a_real_msi_through_every_step(admin_page: Page, tmp_path: Path) -> None:
    page = admin_page
    name, version, maker = "Fabrikam Notes", "4.2.0", "Fabrikam"
    about = "Notes for Fabrikam's teams"
    built = await asyncio.to_thread(
        build_msi, tmp_path, name=name, version=version, manufacturer=maker, description=about
    )
    data = built.path.read_bytes()
    file_name = "fabrikam-notes-4.2.0.msi"

    # 1. Files: the total size, then the progress bar up to 100 %.
    await page.goto("/#/upload")
    files = page.locator("#step-files")
    await expect(files).to_be_visible()
    await page.locator("#upload-file").set_input_files(
        {"name": file_name, "mimeType": "application/x-msi", "buffer": data}
    )
    await expect(page.locator("#upload-files")).to_contain_text(file_name)
    await expect(page.locator("#upload-total")).to_contain_text("Total to upload: ")
    await expect(page.locator("#upload-total")).to_contain_text(f"({len(data):,} bytes)")
    await expect(page.locator("#upload-percent")).to_have_text("0 %")
    # The bar is redrawn away once the last byte is in: record each state it shows.
    await page.evaluate(
        """() => {
            window.__progress = [];
            const bar = document.querySelector("#upload-progress");
            const percent = document.querySelector("#upload-percent");
            const seen = () => window.__progress.push(
                { value: bar.value, max: bar.max, text: percent.textContent });
            new MutationObserver(seen).observe(
                percent, { childList: true, characterData: true, subtree: true });
            new MutationObserver(seen).observe(bar, { attributes: true });
        }"""
    )
    await files.locator("[data-action=next]").click()

    # 2. Description: prefilled from the MSI's Property table and summary.
    step = page.locator("#step-description")
    await expect(step).to_be_visible()
    progress = await page.evaluate("window.__progress")
    assert progress, "the progress bar moved"
    last = progress[-1]
    assert (last["value"], last["max"]) == (len(data), len(data)), progress
    assert last["text"].startswith("100 %"), progress
    await expect(page.locator("#upload-extracted")).to_contain_text(maker)
    await expect(page.locator("#upload-extracted")).to_contain_text(built.product_code)
    await expect(step.locator("[name=title]")).to_have_value(f"{name} {version}")
    await expect(step.locator("[name=description]")).to_have_value(about)
    await step.locator("[name=classification]").select_option("Security Updates")
    await shot(page, "upload-description")
    await step.locator("[data-action=next]").click()

    # 3. Requirements: a size the API refuses shows its message under the field as typed.
    step = page.locator("#step-requirements")
    await expect(step).to_be_visible()
    await step.locator("[name=architecture]").select_option("x64")
    await step.locator("[name=operating_systems]").fill("Windows 11")
    disk = step.locator("[name=min_free_disk_bytes]")
    error = page.locator(f"#{await disk.get_attribute('aria-describedby')}")
    await disk.press_sequentially("5000TB")
    await expect(error).to_have_text(
        "field 'min_free_disk_bytes' = '5000000000000000': "
        "Input should be less than or equal to 1125899906842624"
    )
    await expect(disk).to_have_attribute("aria-invalid", "true")
    await disk.fill("")
    await disk.press_sequentially("500MB")
    await expect(error).to_be_empty()
    await expect(disk).to_have_attribute("aria-invalid", "false")
    await expect(step).to_contain_text("= 500,000,000 bytes")
    await step.locator("[data-action=next]").click()

    # 4. Detection rules are not asked for an .msi: on to 5. Prerequisites (none).
    step = page.locator("#step-prerequisites")
    await expect(step).to_be_visible()
    await expect(page.locator('li[data-step="detection-rules"]')).to_contain_text("not asked")
    await expect(step.locator("input[name=prerequisite][value=none]")).to_be_checked()
    await step.locator("[data-action=next]").click()

    # 6. Command line, 7. return codes (the default map).
    step = page.locator("#step-command-line")
    await expect(step).to_be_visible()
    await step.locator("[name=arguments]").fill("/qn /norestart")
    await step.locator("[data-action=next]").click()
    step = page.locator("#step-return-codes")
    await expect(step).to_be_visible()
    await expect(step.locator("[name='codes.0.code']")).to_have_value("0")
    await expect(step.locator("[name='codes.1.code']")).to_have_value("3010")
    await step.locator("[data-action=next]").click()

    # 8. Summary, commit, and the new update's page.
    step = page.locator("#step-summary")
    await expect(step).to_be_visible()
    for text in (file_name, f"{name} {version}", "Security Updates", "x64", "Windows 11"):
        await expect(step).to_contain_text(text)
    await expect(step).to_contain_text("500,000,000 bytes")
    await expect(step).to_contain_text("/qn /norestart")
    await shot(page, "upload-summary")
    await step.locator("#upload-commit").click()
    done = page.locator("#upload-done")
    await expect(done).to_contain_text("Stored as the update")
    await done.locator("#upload-update-link").click()
    await expect(page).to_have_url(re.compile(r"#/updates/[^/?]+$"))
    properties = page.locator("#update-properties")
    await expect(properties).to_contain_text(f"{name} {version}")
    await expect(properties).to_contain_text("Third-party (uploaded)")
    await expect(properties).to_contain_text("Security Updates")
    package = page.locator("#update-package")
    for text in (file_name, built.product_code, "64-bit (x64)", "Windows 11", "/qn /norestart"):
        await expect(package).to_contain_text(text)
    await expect(page.locator("#update-return-codes")).to_contain_text("3010")
