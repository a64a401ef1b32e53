"""The console a learner comes back to, in Debian's Chromium against a real service:
listening to words, cancelling from the live view, the sign-in link in an open tab,
and an operator reading another user's result and timeline."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import expect
from sqlalchemy import URL

from tests.browser_helpers import chromium, needs_chromium, page_of
from tests.conftest import SECRET
from tests.console_checks import (
    ENGLISH,
    WATCH_CLIP,
    played_clip,
    scored_task,
    sign_in,
    speech_hook,
)
from tests.service_helpers import auth, repeat_wav, running_service
from web.auth import issue_token
from web.console.links import sign_in_link

pytestmark = [pytest.mark.anyio, pytest.mark.browser, needs_chromium, pytest.mark.timeout(300)]

WAIT_MS = 120_000


async def test_the_listen_controls_show_only_while_the_browser_has_an_english_voice(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    french = [{"name": "Test French", "lang": "fr-FR", "default": True}]
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await page.add_init_script(speech_hook(french))
            await sign_in(page, svc.service.url, user)
            listen = page.get_by_test_id("listen-sentence")
            await expect(page.locator("body")).to_have_attribute("data-tts", "no")
            assert await listen.evaluate("(n) => getComputedStyle(n).display") == "none"
            # Voices arrive late in some browsers: the controls appear when they do.
            await page.evaluate("(voices) => window.__setVoices(voices)", ENGLISH)
            await expect(page.locator("body")).to_have_attribute("data-tts", "yes")
            assert await listen.evaluate("(n) => getComputedStyle(n).display") != "none"


async def test_a_learner_cancels_from_the_live_view_then_retries_and_deletes(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    clip = tmp_path / "long.wav"
    clip.write_bytes(repeat_wav(speech_clip, 3))  # long enough to cancel while it runs
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser, height=740) as page:
            await sign_in(page, svc.service.url, user)
            await page.get_by_test_id("file").set_input_files(str(clip))
            await page.get_by_test_id("title").fill("to cancel")
            await page.get_by_test_id("submit").click()
            view = page.get_by_test_id("task-view")
            await expect(view).to_be_in_viewport()  # the live view, without scrolling
            status = page.get_by_test_id("task-status")
            await page.get_by_test_id("task-cancel").click()
            await expect(status).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
            await expect(page.get_by_test_id("failure")).to_contain_text("Cancelled")
            await expect(page.get_by_test_id("task-cancel")).to_have_count(0)

            await page.get_by_test_id("task-retry").click()
            await expect(status).to_have_attribute(
                "data-status", re.compile("preprocessing|transcribing|completed"), timeout=WAIT_MS
            )
            await expect(page.get_by_test_id("retries")).to_contain_text("attempt 2")
            await page.get_by_test_id("task-delete").click()
            await expect(view).to_be_hidden()
            await expect(page.get_by_test_id("notice")).to_contain_text("Deleted")
        listed = await svc.client.get("/tasks", headers=auth(user))
        assert listed.json()["items"] == []


async def test_the_sign_in_link_pasted_into_an_open_tab_signs_in_and_leaves_the_address_bar(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    other = uuid.uuid4()
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await page.goto(svc.service.url)
            await expect(page.locator("body[data-ready=true]")).to_be_attached()
            await expect(page.get_by_test_id("sign-in")).to_be_visible()
            for who in (user, other):  # signed out, then signed in as someone else
                link = sign_in_link(svc.service.url, issue_token(SECRET, who))
                # Pasting it changes only the fragment: no load, a hashchange.
                await page.evaluate("(link) => { location.href = link; }", link)
                await expect(page.locator("body")).to_have_attribute("data-user", str(who))
                await expect(page.get_by_test_id("nav-record")).to_be_visible()
                assert "token" not in page.url
                assert page.url.endswith("#record")
                assert "token" not in await page.evaluate("location.href")


async def test_an_operator_opens_another_users_result_and_a_readable_timeline(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    operator = uuid.uuid4()
    async with (
        running_service(service_database_url, tmp_path, admin_users=[operator]) as svc,
        chromium() as browser,
    ):
        task = await scored_task(svc.client, user, speech_clip, title="a learner's reading")
        async with page_of(browser, height=740) as page:
            await sign_in(page, svc.service.url, operator)
            await page.get_by_test_id("nav-admin").click()
            row = page.locator(f"[data-testid=admin-row][data-task-id='{task['id']}']")
            await row.get_by_test_id("admin-timeline").click()
            # Under its own task, as a table: a header, one row per event, payloads folded.
            table = row.get_by_test_id("timeline")
            await expect(table).to_be_visible()
            assert await table.locator("th").all_inner_texts() == [
                "When",
                "Event",
                "Status",
                "Details",
            ]
            items = table.get_by_test_id("timeline-item")
            events = (
                await svc.client.get(f"/admin/tasks/{task['id']}/events", headers=auth(operator))
            ).json()["events"]
            await expect(items).to_have_count(len(events))
            await expect(items.first).to_contain_text("created")
            await expect(items.last).to_contain_text("completed")
            assert await table.locator("details[open]").count() == 0
            folded = table.locator("details").first
            await expect(folded.locator("pre")).to_be_hidden()
            await folded.locator("summary").click()
            await expect(folded.locator("pre")).to_be_visible()
            await expect(row.get_by_test_id("admin-timeline")).to_have_attribute(
                "aria-expanded", "true"
            )

            await row.get_by_test_id("admin-open").click()
            view = page.get_by_test_id("task-view")
            await expect(view).to_be_in_viewport()
            await expect(page.locator("#task-title")).to_contain_text(str(user))
            await expect(page.get_by_test_id("accuracy")).to_have_text(re.compile(r"\d+ / 100"))
            words = page.get_by_test_id("word")
            await expect(words).to_have_count(len(task["evaluation"]["words"]))
            assert await page.locator("#task-form").is_hidden()
            audio = page.get_by_test_id("playback")
            assert (await audio.get_attribute("src") or "").startswith("/admin/tasks/")
            timed = page.locator("[data-testid=word][data-start]").first
            await timed.click()
            await page.evaluate(WATCH_CLIP)
            await page.get_by_test_id("play-word").click()
            start, end = (
                float(await timed.get_attribute("data-start") or 0),
                float(await timed.get_attribute("data-end") or 0),
            )
            began, stopped = await played_clip(page)
            assert start - 0.1 <= began < end
            assert end - 0.05 <= stopped <= end + 0.35
