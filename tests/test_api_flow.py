"""A real recording through the real service: statuses, seq, replay, results."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from tests.service_helpers import auth, create, iter_sse, read_stream, repeat_wav, running_service

pytestmark = pytest.mark.anyio


async def test_speech_goes_through_every_status_and_replays_exactly(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        created = await create(svc.client, user, speech_clip, title="best of times")
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["status"] == "created"
        assert created.headers["location"] == f"/tasks/{task['id']}"
        path = f"/tasks/{task['id']}/events"

        with anyio.fail_after(60):
            events = await read_stream(svc.client, path, auth(user))
        statuses = [e.data["status"] for e in events if e.event == "status"]
        assert statuses == [
            "created",
            "queued",
            "started",
            "preprocessing",
            "transcribing",
            "completed",
        ]
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        assert all(e.data["seq"] == e.id and e.data["task_id"] == task["id"] for e in events)

        detail = (await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))).json()
        assert detail["status"] == "completed"
        # Whisper's writing: capitals and punctuation kept.
        assert detail["transcript"].startswith("It was the best of times,")
        assert detail["result"]
        assert [w["text"] for w in detail["words"]][:3] == ["It", "was", "the"]
        assert detail["phonemes"]
        assert {"ipa", "start", "end", "word"} == set(detail["phonemes"][0])
        assert [s["text"] for s in detail["segments"]] == [detail["transcript"]]
        assert detail["duration"] == pytest.approx(5.0, abs=0.05)
        assert detail["last_event_id"] == len(events)

        for k in (0, 3, len(events) - 1):
            resumed = await read_stream(svc.client, path, {**auth(user), "Last-Event-ID": str(k)})
            assert [e.id for e in resumed] == list(range(k + 1, len(events) + 1))
        by_query = await read_stream(svc.client, f"{path}?last_event_id=2", auth(user))
        assert [e.id for e in by_query] == list(range(3, len(events) + 1))

        ended = await svc.client.get(
            path, headers={**auth(user), "Last-Event-ID": str(len(events))}
        )
        assert ended.status_code == 204


async def test_reference_text_is_scored(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    text = "It was the best of times, it was the worst of times."
    async with running_service(service_database_url, tmp_path) as svc:
        task = (await create(svc.client, user, speech_clip, reference_text=text)).json()
        with anyio.fail_after(60):
            events = await read_stream(svc.client, f"/tasks/{task['id']}/events", auth(user))
        assert "evaluating" in [e.data["status"] for e in events]
        detail = (await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))).json()
        assert detail["status"] == "completed"
        assert 0 < detail["accuracy"] <= 100
        assert isinstance(detail["mistakes"], list)
        assert detail["evaluation"]["words"]


async def test_cancel_during_transcribing_then_retry_completes(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = repeat_wav(speech_clip, 4)  # 20 s: transcribing lasts a few seconds
    async with running_service(service_database_url, tmp_path) as svc:
        task = (await create(svc.client, user, long_clip)).json()
        path = f"/tasks/{task['id']}"
        async with svc.client.stream("GET", f"{path}/events", headers=auth(user)) as response:
            events = iter_sse(response)
            with anyio.fail_after(60):
                async for event in events:
                    if event.data["status"] == "transcribing":
                        break
            answer = await svc.client.post(f"{path}/cancel", headers=auth(user))
            assert answer.status_code == 202
            with anyio.fail_after(30):
                after = [event.data["status"] async for event in events if event.event == "status"]
            # The stage was stopped, not waited for: no result, no completion before it.
            assert after == ["cancelled"]

        again = await svc.client.post(f"{path}/cancel", headers=auth(user))
        assert again.status_code == 409
        assert again.json()["detail"] == "the task has already ended (cancelled)"
        detail = (await svc.client.get(path, headers=auth(user))).json()
        assert detail["status"] == "cancelled"
        assert detail["failure_reason"]
        assert detail["transcript"] is None

        retried = await svc.client.post(f"{path}/retry", headers=auth(user))
        assert retried.status_code == 202, retried.text
        assert retried.json()["attempt"] == 2
        last = detail["last_event_id"]
        with anyio.fail_after(90):
            rest = await read_stream(
                svc.client, f"{path}/events", {**auth(user), "Last-Event-ID": str(last)}
            )
        assert rest[0].id == last + 1
        assert rest[-1].data["status"] == "completed"
        assert (await svc.client.post(f"{path}/retry", headers=auth(user))).status_code == 409
        detail = (await svc.client.get(path, headers=auth(user))).json()
        assert detail["status"] == "completed"
        assert detail["transcript"]
