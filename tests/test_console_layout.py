"""Every page of the console at a phone's width (360 px) and a desk's (1280 px), in
Debian's Chromium: no sideways scrolling with a 50-character unbroken title, touch
targets of 44 px, and no serious or critical axe-core violation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import URL

from tests.browser_helpers import chromium, needs_chromium, page_of
from tests.console_checks import (
    AXE,
    AXE_MISSING,
    ENGLISH,
    LONG_TITLE,
    WIDTHS,
    assert_fits,
    assert_touch_targets,
    axe_violations,
    scored_task,
    screenshots,
    sign_in,
    speech_hook,
)
from tests.service_helpers import Running, auth, create, read_stream, running_service
from tests.stages_helpers import wav_of

pytestmark = [pytest.mark.anyio, pytest.mark.browser, needs_chromium, pytest.mark.timeout(400)]

SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)
Check = Callable[[Page, str], Awaitable[None]]


async def _tour(
    browser: Browser,
    svc: Running,
    people: tuple[uuid.UUID, uuid.UUID],
    task: dict[str, Any],
    size: tuple[int, int],
    long_file: Path,
    check: Check,
) -> None:
    """Every page a learner and an operator see, in the state that makes it widest,
    each handed to `check` with its name."""
    learner, operator = people
    width, height = size
    async with page_of(browser, width=width, height=height) as page:
        await page.add_init_script(speech_hook(ENGLISH))  # the listen controls shown
        await page.goto(svc.service.url)
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await check(page, "sign-in")
        await sign_in(page, svc.service.url, learner)
        await page.get_by_test_id("file").set_input_files(str(long_file))
        await page.get_by_test_id("title").fill(LONG_TITLE)
        await check(page, "record")
        await page.goto(f"{svc.service.url}/#task/{task['id']}")
        await expect(page.get_by_test_id("result")).to_be_visible()
        await page.locator("[data-testid=word][data-start]").first.click()
        await expect(page.get_by_test_id("word-detail")).to_contain_text("expected /")
        await check(page, "result")
        await page.get_by_test_id("nav-tasks").click()
        await expect(page.get_by_test_id("task-row").first).to_be_visible()
        await check(page, "tasks")
    async with page_of(browser, width=width, height=height) as page:
        await page.add_init_script(speech_hook(ENGLISH))
        await sign_in(page, svc.service.url, operator)
        await page.get_by_test_id("nav-admin").click()
        row = page.locator(f"[data-testid=admin-row][data-task-id='{task['id']}']")
        await row.get_by_test_id("admin-timeline").click()
        await row.locator("details summary").first.click()
        await expect(row.locator("details pre").first).to_be_visible()
        await check(page, "operator")
        await row.get_by_test_id("admin-open").click()
        await expect(page.get_by_test_id("result")).to_be_visible()
        await check(page, "review")


async def _world(svc: Running, learner: uuid.UUID, clip: bytes) -> dict[str, Any]:
    """A scored task and a failed one, both with the long title."""
    failed = (await create(svc.client, learner, SILENT, title=LONG_TITLE)).json()
    with anyio.fail_after(60):
        await read_stream(svc.client, f"/tasks/{failed['id']}/events", auth(learner))
    return await scored_task(svc.client, learner, clip)


def _long_file(tmp_path: Path, clip: bytes) -> Path:
    path = tmp_path / ("a_recording_with_a_very_long_file_name_" * 3 + ".wav")
    path.write_bytes(clip)
    return path


async def test_no_page_scrolls_sideways_and_every_target_is_44_px_at_360_and_1280(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    operator = uuid.uuid4()
    shots = await screenshots(tmp_path)  # each page at each size
    checked: list[str] = []
    async with (
        running_service(service_database_url, tmp_path, admin_users=[operator]) as svc,
        chromium() as browser,
    ):
        task = await _world(svc, user, speech_clip)
        for size in WIDTHS:

            async def check(page: Page, name: str, size: tuple[int, int] = size) -> None:
                what = f"{name} at {size[0]} px"
                await assert_fits(page, what)
                await assert_touch_targets(page, what)
                await page.screenshot(path=str(shots / f"{name}-{size[0]}.png"), full_page=True)
                checked.append(what)

            await _tour(
                browser, svc, (user, operator), task, size, _long_file(tmp_path, speech_clip), check
            )
    assert len(checked) == 2 * 6


@pytest.mark.skipif(not AXE.exists(), reason=AXE_MISSING)
async def test_axe_core_finds_no_serious_or_critical_violation_on_any_page(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    operator = uuid.uuid4()
    found: dict[str, list[str]] = {}
    async with (
        running_service(service_database_url, tmp_path, admin_users=[operator]) as svc,
        chromium() as browser,
    ):
        task = await _world(svc, user, speech_clip)
        for size in WIDTHS:

            async def check(page: Page, name: str, size: tuple[int, int] = size) -> None:
                found[f"{name} at {size[0]} px"] = await axe_violations(page)

            await _tour(
                browser, svc, (user, operator), task, size, _long_file(tmp_path, speech_clip), check
            )
    assert len(found) == 2 * 6
    assert {page: v for page, v in found.items() if v} == {}
