"""The console a learner comes back to, in Debian's Chromium against a real service:
listening to words, cancelling from the live view, the sign-in link in an open tab,
and an operator reading another user's result and timeline."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

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
            words = page.locator("[data-testid=word]:not([data-verdict=inserted])")
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

            await page.get_by_test_id("task-delete").click()  # the operator may delete it
            await expect(page.locator("#admin-view")).to_be_visible()
            gone = await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))
            assert gone.status_code == 404


#: A result as the Whisper and CTC-phoneme engines write it: punctuation, segments,
#: phonemes under their word, a replaced word (heard_word), speech past the text.
NEW_SHAPE: dict[str, Any] = {
    "id": str(uuid.UUID(int=1)),
    "title": "new shape",
    "status": "completed",
    "reference_text": "Think of it.",
    "transcript": "Sink of it. Again!",
    "segments": [
        {"text": "Sink of it.", "start": 0.0, "end": 1.2},
        {"text": "Again!", "start": 1.5, "end": 2.0},
    ],
    "words": [
        {"text": "Sink", "start": 0.1, "end": 0.4, "confidence": 0.9},
        {"text": "of", "start": 0.45, "end": 0.6, "confidence": 0.9},
        {"text": "it.", "start": 0.65, "end": 1.0, "confidence": 0.9},
        {"text": "Again!", "start": 1.5, "end": 2.0, "confidence": 0.8},
    ],
    "phonemes": [
        {"ipa": ipa, "start": start, "end": end, "word": word}
        for ipa, start, end, word in [
            ("s", 0.1, 0.17, 0), ("ɪ", 0.17, 0.25, 0), ("ŋ", 0.25, 0.32, 0), ("k", 0.32, 0.4, 0),
            ("ə", 0.45, 0.52, 1), ("v", 0.52, 0.6, 1), ("ɪ", 0.65, 0.8, 2), ("t", 0.8, 1.0, 2),
        ]
    ],
    "accuracy": 61.5,
    "evaluation": {
        "method": "ctc-gop",
        "completeness": 100.0,
        "other_text": False,
        "inserted": [{"word": "Again!", "start": 1.5, "end": 2.0, "heard": "ə ɡ ɛ n"}],
        "words": [
            {
                "word": "think", "index": 0, "verdict": "mispronounced", "score": 40.0,
                "heard_word": "sink", "start": 0.1, "end": 0.4,
                "expected": "θ ɪ ŋ k", "heard": "s ɪ ŋ k",
                "phonemes": [{"ipa": "θ", "heard": "s"}, {"ipa": "ɪ"}, {"ipa": "ŋ"}, {"ipa": "k"}],
            },
            {
                "word": "of", "index": 1, "verdict": "correct", "score": 96.0,
                "start": 0.45, "end": 0.6, "expected": "ə v", "heard": "",
                "phonemes": [{"ipa": "ə"}, {"ipa": "v"}],
            },
            {
                "word": "it", "index": 2, "verdict": "correct", "score": 98.0,
                "start": 0.65, "end": 1.0, "expected": "ɪ t", "heard": "",
                "phonemes": [{"ipa": "ɪ"}, {"ipa": "t"}],
            },
        ],
    },
}  # fmt: skip

SHOW = """async (task) => {
    const { showResult } = await import("/console/js/result.js");
    document.getElementById("record-view").hidden = false;
    document.getElementById("task-view").hidden = false;
    showResult(task, "/no-audio");
}"""


async def test_the_result_reads_segments_punctuation_and_phonemes_under_their_words(
    service_database_url: URL, tmp_path: Path
) -> None:
    async with running_service(service_database_url, tmp_path) as svc, chromium() as browser:
        async with page_of(browser) as page:
            await page.goto(svc.service.url)
            await expect(page.locator("body[data-ready=true]")).to_be_attached()
            await page.evaluate(SHOW, NEW_SHAPE)
            # Heard: the transcript as written, a line per segment, each word timed.
            lines = page.locator("#transcript .segment")
            assert await lines.all_inner_texts() == ["Sink of it.", "Again!"]
            await page.evaluate(
                """async () => (await import("/console/js/heard.js"))
                    .highlight(document.getElementById("result"), 0.5)"""
            )
            lit = page.locator("#result .speaking")
            assert await lit.all_text_contents() == ["✓of", "of"]  # the word and its transcript
            # The replaced word first, in plain words; the speech past the text as a word.
            practise = page.get_by_test_id("practise-word")
            await expect(practise).to_have_count(1)
            await expect(practise).to_contain_text("heard as “sink”; th said as s")
            verdicts = [
                await w.get_attribute("data-verdict")
                for w in await page.get_by_test_id("word").all()
            ]
            assert verdicts == ["mispronounced", "correct", "correct", "inserted"]
            # Sounds: expected over heard under each word, the changed one marked.
            think = page.get_by_test_id("sound-word").first
            assert await think.locator(".expected .phone").all_inner_texts() == list("θɪŋk")
            assert await think.locator(".heard .phone").all_inner_texts() == list("sɪŋk")
            assert await think.locator(".heard .differs").all_inner_texts() == ["s"]
            await expect(page.get_by_test_id("completeness")).to_have_text("100 %")

            # Without a reference text: the heard sounds under the heard words (by index).
            unscored = {**NEW_SHAPE, "evaluation": None, "accuracy": None}
            await page.evaluate(SHOW, unscored)
            groups = page.get_by_test_id("sound-word")
            assert await groups.locator(".sw").all_inner_texts() == ["Sink", "of", "it.", "Again!"]
            assert await groups.first.locator(".phone").all_inner_texts() == list("sɪŋk")
            await expect(page.get_by_test_id("practise-box")).to_be_hidden()
            # ... and by time where the phonemes do not name their word.
            untold = [{k: v for k, v in p.items() if k != "word"} for p in NEW_SHAPE["phonemes"]]
            await page.evaluate(SHOW, {**unscored, "phonemes": untold})
            assert await groups.nth(1).locator(".phone").all_inner_texts() == ["ə", "v"]

            # A reading of another text is said to be one.
            other = {**NEW_SHAPE, "evaluation": {**NEW_SHAPE["evaluation"], "other_text": True}}
            await page.evaluate(SHOW, other)
            await expect(page.get_by_test_id("accuracy-meaning")).to_contain_text("another text")
