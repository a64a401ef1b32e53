"""The console in a real browser (Debian's Chromium) against a real service on a free port."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import anyio
import numpy as np
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import URL

from tests.browser_helpers import CuttableProxy, chromium, needs_chromium, other_site, page_of
from tests.conftest import SECRET
from tests.console_checks import (
    ENGLISH,
    READING,
    WATCH_CLIP,
    played_clip,
    screenshots,
    sign_in,
    speech_hook,
)
from tests.service_helpers import auth, create, read_stream, repeat_wav, running_service
from tests.stages_helpers import wav_of
from web.auth import issue_token

pytestmark = [pytest.mark.anyio, pytest.mark.browser, needs_chromium, pytest.mark.timeout(300)]

SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)
#: The order statuses come in (queued only when the engines are busy; evaluating with a text).
ORDER = ["created", "queued", "started", "preprocessing", "transcribing", "evaluating", "completed"]
WAIT_MS = 120_000


async def history(page: Page) -> list[str]:
    return await page.get_by_test_id("history-item").all_inner_texts()


async def test_a_learner_records_and_sees_the_statuses_live_then_the_scored_words(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser, height=740) as page:
            await page.add_init_script(speech_hook(ENGLISH))
            await sign_in(page, svc.service.url, user)
            await page.get_by_test_id("record").click()
            await expect(page.get_by_test_id("record-state")).to_contain_text("5 s", timeout=20_000)
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("record-state")).to_contain_text("ready to send")
            await page.get_by_test_id("reference-text").fill(READING)
            await page.get_by_test_id("submit").click()
            await expect(page.get_by_test_id("task-view")).to_be_in_viewport()  # no scrolling
            await expect(page.get_by_test_id("task-cancel")).to_be_visible()
            status = page.get_by_test_id("task-status")
            await expect(status).to_have_attribute("data-status", "completed", timeout=WAIT_MS)

            seen = await history(page)
            assert seen == [s for s in ORDER if s in seen]  # in order, each once
            assert {"created", "preprocessing", "transcribing", "evaluating"} <= set(seen)
            await expect(page.get_by_test_id("accuracy")).to_have_text(re.compile(r"\d+ / 100"))
            await expect(page.get_by_test_id("accuracy-meaning")).to_contain_text("how close")
            task_id = page.url.rsplit("/", 1)[1]
            task = (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).json()
            scored = task["evaluation"]["words"]

            # Practise first: the flagged words, mispronounced (lowest first), then missed.
            def flagged(verdict: str) -> list[str]:
                ranked = sorted(
                    (w for w in scored if w["verdict"] == verdict), key=lambda w: w["score"]
                )
                return [w["word"] for w in ranked]

            first = (flagged("mispronounced") + flagged("missed"))[:3]
            assert first  # the text's unread end, at least
            practise = page.get_by_test_id("practise-word")
            assert [await p.get_attribute("data-word") for p in await practise.all()] == first

            words = page.get_by_test_id("word")
            read = page.locator("[data-testid=word]:not([data-verdict=inserted])")
            assert await read.count() == len(READING.split())
            # Speech that is not the text shows too, where it was said.
            said = [w for w in task["evaluation"].get("inserted", []) if w["word"].strip()]
            inserted = page.locator("[data-testid=word][data-verdict=inserted]")
            assert await inserted.count() == len(said)
            verdicts = {await w.get_attribute("data-verdict") for w in await words.all()}
            assert verdicts <= {"correct", "mispronounced", "missed", "inserted"}
            await words.first.focus()  # by keyboard: expected vs heard
            detail = page.get_by_test_id("word-detail")
            await expect(detail).to_contain_text("expected /")
            await expect(detail).to_contain_text("heard /")
            sounds = page.get_by_test_id("sound-word")  # the Sounds panel: phones under words
            await expect(sounds).to_have_count(len(scored) + len(said))
            assert (await page.get_by_test_id("transcript").inner_text()).strip()

            # How the word should sound (speech synthesis), and how the learner said it.
            timed = page.locator("[data-testid=word][data-start]").first
            await timed.click()
            text = await timed.evaluate("(n) => n.lastChild.textContent")
            await page.get_by_test_id("listen-word").click()
            spoken = await page.evaluate("window.__spoken")
            assert spoken[-1] == {"text": text, "lang": "en-GB"}
            await page.evaluate(WATCH_CLIP)
            await page.get_by_test_id("play-word").click()
            start = float(await timed.get_attribute("data-start") or 0)
            end = float(await timed.get_attribute("data-end") or 0)
            began, stopped = await played_clip(page)
            assert start - 0.1 <= began < end
            assert end - 0.05 <= stopped <= end + 0.35
            await page.get_by_test_id("listen-sentence").click()
            assert (await page.evaluate("window.__spoken"))[-1]["text"] == READING

            # The whole recording, its words lit up as they are said (the word times).
            await page.evaluate("document.getElementById('playback').muted = true")
            await page.get_by_test_id("play-all").click()
            await expect(page.locator("#transcript .speaking").first).to_be_attached()
            shot = await screenshots(tmp_path)
            await page.get_by_test_id("task-view").screenshot(path=str(shot / "learner-360.png"))

            # The transcript's downloads, once the service offers them (GET .../transcript).
            offered = await svc.client.head(
                f"/tasks/{task_id}/transcript?format=txt", headers=auth(user)
            )
            downloads = page.get_by_test_id("downloads")
            if offered.status_code != 200:
                await expect(downloads).to_be_hidden()
                return
            await expect(downloads).to_be_visible()
            for fmt in ("txt", "srt", "vtt", "json"):
                link = page.get_by_test_id(f"download-{fmt}")
                assert await link.get_attribute("download")
                href = await link.get_attribute("href")
                assert href == f"/tasks/{task_id}/transcript?format={fmt}"
                assert await page.evaluate("(u) => fetch(u).then((r) => r.status)", href) == 200


async def test_a_file_upload_is_cancelled_retried_and_deleted_in_a_live_list(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = tmp_path / "long.wav"
    long_clip.write_bytes(repeat_wav(speech_clip, 3))  # long enough to cancel while it runs
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            await page.get_by_test_id("file").set_input_files(str(long_clip))
            await page.get_by_test_id("title").fill("long reading")
            await page.get_by_test_id("submit").click()
            await expect(page.get_by_test_id("task-view")).to_be_visible()
            await page.get_by_test_id("nav-tasks").click()
            row = page.get_by_test_id("task-row").filter(has_text="long reading")
            await expect(row).to_have_count(1)
            await row.get_by_test_id("cancel").click()
            await expect(row).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
            await row.get_by_test_id("retry").click()
            # Live: the row moves on by itself, through the stream, to its end.
            await expect(row.get_by_test_id("row-status")).to_have_text(
                re.compile("preprocessing|transcribing|completed"), timeout=WAIT_MS
            )
            await expect(row).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
            await row.get_by_test_id("delete").click()
            await expect(row).to_have_count(0)
        listed = await svc.client.get("/tasks", headers=auth(user))
        assert listed.json()["items"] == []


async def test_the_live_view_counts_the_queue_down_as_the_tasks_ahead_leave(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = repeat_wav(speech_clip, 8)
    upload = tmp_path / "mine.wav"
    upload.write_bytes(speech_clip)
    async with (
        running_service(service_database_url, tmp_path, capacity=1) as svc,
        chromium() as browser,
    ):
        running, ahead = [(await create(svc.client, user, long_clip)).json() for _ in "ab"]
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            await page.get_by_test_id("file").set_input_files(str(upload))
            await page.get_by_test_id("submit").click()
            place = page.get_by_test_id("queue-position")
            await expect(place).to_have_text("2 (1 = next)", timeout=WAIT_MS)
            for task in (ahead, running):  # each leaving moves it up, live
                cancel = await svc.client.post(f"/tasks/{task['id']}/cancel", headers=auth(user))
                assert cancel.status_code == 202
                if task is ahead:
                    await expect(place).to_have_text("1 (1 = next)")
            status = page.get_by_test_id("task-status")
            await expect(status).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
            await expect(place).to_have_text("–")


async def test_the_page_resumes_after_the_network_drops_and_shows_the_end(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    clip = tmp_path / "reading.wav"
    clip.write_bytes(repeat_wav(speech_clip, 3))
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with CuttableProxy(svc.service.port).running() as proxy, page_of(browser) as page:
            await sign_in(page, proxy.url, user)
            await page.get_by_test_id("file").set_input_files(str(clip))
            await page.get_by_test_id("reference-text").fill(READING)
            await page.get_by_test_id("submit").click()
            status = page.get_by_test_id("task-status")
            await expect(status).to_have_attribute(
                "data-status", re.compile("preprocessing|transcribing"), timeout=WAIT_MS
            )
            assert proxy.cut() >= 1  # the stream's connection, from the server's side
            await expect(page.get_by_test_id("task-view")).to_have_attribute(
                "data-stream", "reconnecting"
            )
            await expect(status).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
            seen = await history(page)
            assert seen == [s for s in ORDER if s in seen]  # resumed: no gap, no repeat
            assert "transcribing" in seen
            await expect(page.get_by_test_id("accuracy")).to_have_text(re.compile(r"\d+ / 100"))


async def test_an_operator_retries_another_users_failed_task_and_a_learner_gets_404(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    operator = uuid.uuid4()
    async with (
        running_service(service_database_url, tmp_path, admin_users=[operator]) as svc,
        chromium() as browser,
    ):
        task = (await create(svc.client, user, SILENT, title="silence")).json()
        with anyio.fail_after(30):
            await read_stream(svc.client, f"/tasks/{task['id']}/events", auth(user))
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, operator)
            await page.get_by_test_id("nav-admin").click()
            row = page.locator(f"[data-testid=admin-row][data-task-id='{task['id']}']")
            await expect(row).to_have_attribute("data-status", "failed")
            await expect(row).to_contain_text(str(user))
            await expect(row.get_by_test_id("failure-reason")).not_to_be_empty()
            await row.get_by_test_id("admin-timeline").click()
            await expect(page.get_by_test_id("timeline-item").first).to_contain_text("created")
            await row.get_by_test_id("admin-retry").click()
            retried = page.locator(f"[data-testid=admin-row][data-task-id='{task['id']}']")
            await expect(retried).to_contain_text("attempt 2")
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            await expect(page.get_by_test_id("nav-admin")).to_be_hidden()
            status = await page.evaluate("fetch('/admin/tasks').then((r) => r.status)")
            assert status == 404


async def test_a_cross_site_form_post_is_refused(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            task = (await create(svc.client, user, SILENT)).json()
            forger = issue_token(SECRET, uuid.uuid4())
            forms = [
                f'<input name="token" value="{forger}">',  # sign the victim in as the forger
                "",  # cancel the victim's task
            ]
            for path, fields in zip(
                ["/session", f"/tasks/{task['id']}/cancel"], forms, strict=True
            ):
                html = f'<form method="post" action="{svc.service.url}{path}">{fields}</form>'
                async with other_site(html) as evil:
                    await page.goto(evil)
                    async with page.expect_navigation() as navigation:
                        await page.evaluate("document.forms[0].submit()")
                    refused = await navigation.value
                assert refused is not None
                assert refused.status in (401, 403), path  # 401: SameSite kept the cookie home
                assert "set-cookie" not in await refused.all_headers()
            await page.goto(svc.service.url)  # still signed in as themselves, not the forger
            who = await page.evaluate("fetch('/session').then((r) => r.json())")
            assert who["user_id"] == str(user)
        detail = await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))
        assert detail.json()["status"] != "cancelled"


async def test_a_cross_origin_fetch_is_refused_unless_the_origin_is_allowed(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    script = """async ([url, token]) => {
        try {
            const headers = { Authorization: "Bearer " + token };
            const answer = await fetch(url + "/tasks", { headers });
            return String(answer.status);
        } catch (error) { return error.name; }
    }"""
    token = issue_token(SECRET, user)
    async with other_site("<p>a front-end elsewhere</p>") as front_end, chromium() as browser:
        async with running_service(service_database_url, tmp_path) as svc, page_of(browser) as page:
            await page.goto(front_end)
            assert await page.evaluate(script, [svc.service.url, token]) == "TypeError"
        async with (
            running_service(service_database_url, tmp_path, cors_origins=[front_end]) as svc,
            page_of(browser) as page,
        ):
            await page.goto(front_end)
            assert await page.evaluate(script, [svc.service.url, token]) == "200"


async def test_a_front_end_of_another_origin_streams_with_the_cookie_when_allowed(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    script = """([url, taskId]) => new Promise((done) => {
        const statuses = [];
        const source = new EventSource(`${url}/tasks/${taskId}/events`, { withCredentials: true });
        source.addEventListener("status", (message) => {
            const status = JSON.parse(message.data).status;
            statuses.push(status);
            if (status === "failed") { source.close(); done(statuses); }
        });
        source.onerror = () => { source.close(); done(["error", ...statuses]); };
    })"""
    # Same site (127.0.0.1), another origin (port): the SameSite=Strict cookie goes along.
    async with other_site("<p>a front-end</p>", host="127.0.0.1") as front_end:
        async with (
            running_service(service_database_url, tmp_path, cors_origins=[front_end]) as svc,
            chromium() as browser,
            page_of(browser) as page,
        ):
            task = (await create(svc.client, user, SILENT)).json()
            await sign_in(page, svc.service.url, user)
            await page.goto(front_end)
            statuses = await page.evaluate(script, [svc.service.url, task["id"]])
            assert statuses[0] == "created"
            assert statuses[-1] == "failed"


async def test_my_tasks_pages_newest_first_and_filters_by_status(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        titles = [f"take {n:02}" for n in range(22)]
        for title in titles:
            await create(svc.client, user, SILENT, title=title)
        last = (await svc.client.get("/tasks", headers=auth(user))).json()["items"][0]
        with anyio.fail_after(30):
            await read_stream(svc.client, f"/tasks/{last['id']}/events", auth(user))
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            await page.get_by_test_id("nav-tasks").click()
            rows = page.get_by_test_id("task-row")
            await expect(rows).to_have_count(20)
            await expect(rows.first).to_contain_text("take 21")  # newest first
            await page.get_by_test_id("tasks-more").click()
            await expect(rows).to_have_count(22)
            await expect(rows.last).to_contain_text("take 00")
            await expect(page.get_by_test_id("tasks-more")).to_be_hidden()
            await page.get_by_test_id("tasks-status").select_option("completed")
            await page.get_by_role("button", name="Show").click()
            await expect(rows).to_have_count(0)
            await expect(page.get_by_test_id("notice")).to_have_text("No completed tasks.")


async def test_signing_out_ends_the_session_and_shows_the_sign_in_form(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await sign_in(page, svc.service.url, user)
            cookies = await page.context.cookies()
            (session,) = [c for c in cookies if c["name"] == "stm_session"]
            assert session["httpOnly"]
            assert session["sameSite"] == "Strict"
            assert await page.evaluate("document.cookie") == ""  # out of the page's reach
            await page.get_by_test_id("sign-out").click()
            await expect(page.get_by_test_id("sign-in")).to_be_visible()
            status = await page.evaluate("fetch('/session').then((r) => r.status)")
            assert status == 401
            await page.reload()  # and it stays so
            await expect(page.get_by_test_id("sign-in")).to_be_visible()
            await page.get_by_test_id("token").fill(issue_token(SECRET, user))
            await page.get_by_test_id("sign-in-submit").click()  # the form works too
            await expect(page.get_by_test_id("nav-record")).to_be_visible()
