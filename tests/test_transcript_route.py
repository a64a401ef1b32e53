"""``GET /tasks/{id}/transcript``: a completed task as text, subtitles or JSON to save."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import anyio
import pytest
import srt
import webvtt
from sqlalchemy import URL

from tests.openai_helpers import final_status, silence
from tests.service_helpers import auth, create, running_service

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(180)
async def test_a_completed_task_downloads_in_every_format(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        made = await create(svc.client, user, speech_clip, filename="Reading été.wav")
        task_id = made.json()["id"]
        with anyio.fail_after(120):
            assert await final_status(svc, user, task_id) == "completed"
        task = (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).json()
        path = f"/tasks/{task_id}/transcript"
        got = {
            f: await svc.client.get(f"{path}?format={f}", headers=auth(user))
            for f in ("txt", "srt", "vtt", "json")
        }
        default = await svc.client.get(path, headers=auth(user))
        stranger = await svc.client.get(path, headers=auth(uuid.uuid4()))
        unknown = await svc.client.get(f"/tasks/{uuid.uuid4()}/transcript", headers=auth(user))
        bad = await svc.client.get(f"{path}?format=docx", headers=auth(user))

    transcript, duration = task["transcript"], task["duration"]
    assert transcript
    media = {
        "txt": "text/plain; charset=utf-8",
        "srt": "application/x-subrip; charset=utf-8",
        "vtt": "text/vtt; charset=utf-8",
        "json": "application/json",
    }
    for name, answer in got.items():
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media[name]
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="Reading _t_.{name}"; '
            f"filename*=UTF-8''Reading%20%C3%A9t%C3%A9.{name}"
        )
    assert got["txt"].text == transcript + "\n"
    assert default.text == got["txt"].text
    cues = list(srt.parse(got["srt"].text))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == transcript
    starts = [c.start.total_seconds() for c in cues]
    assert starts == sorted(starts)
    assert all(0 <= c.start.total_seconds() < c.end.total_seconds() <= duration for c in cues)
    captions = webvtt.from_buffer(io.StringIO(got["vtt"].text))
    assert [c.text.replace("\n", " ") for c in captions.captions] == [
        c.content.replace("\n", " ") for c in cues
    ]
    body = got["json"].json()
    assert body["task_id"] == task_id
    assert body["text"] == transcript
    assert body["words"] == task["words"]
    assert " ".join(s["text"] for s in body["segments"]) == transcript

    assert (stranger.status_code, stranger.json()["error"]) == (404, "not_found")
    assert unknown.status_code == 404
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid")


async def test_a_task_that_is_not_completed_has_no_transcript_yet(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        made = await create(svc.client, user, silence(1.0))
        task_id = made.json()["id"]
        early = await svc.client.get(f"/tasks/{task_id}/transcript", headers=auth(user))
        with anyio.fail_after(60):
            status = await final_status(svc, user, task_id)
        late = await svc.client.get(f"/tasks/{task_id}/transcript", headers=auth(user))
    assert status == "failed"  # nothing said: the recogniser finds no words
    for answer in (early, late):
        assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert "failed" in late.json()["detail"]
