"""Synchronous transcriptions are tasks: they share the capacity and the queue, and a caller
who hangs up cancels its task and frees its slot. The transcriber is a fake OpenAI-compatible
server on loopback that answers when the test says."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from sqlalchemy import URL

from tests.openai_helpers import HEARD, HeldTranscriber, final_status, named, sdk, until_tasks
from tests.service_helpers import auth, running_service

pytestmark = pytest.mark.anyio


async def test_as_many_requests_as_the_capacity_run_the_rest_queue_and_all_are_answered(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    capacity, queued = 2, 3
    held = HeldTranscriber()
    texts: list[str] = []
    async with (
        held.serving() as speech,
        running_service(
            service_database_url, tmp_path, speech_overrides=speech, capacity=capacity
        ) as svc,
    ):
        async with sdk(svc, user) as client:

            async def ask() -> None:
                answer = await client.audio.transcriptions.create(
                    file=named(speech_clip), model="whisper-1"
                )
                texts.append(answer.text)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for _ in range(capacity + queued):
                        group.start_soon(ask)
                    await held.arrivals(capacity)
                    waiting = await until_tasks(svc, user, queued, "queued")
                    assert len(waiting) == queued
                    assert held.running == capacity
                    held.release.set()
    assert texts == [HEARD] * (capacity + queued)
    assert held.most_running == capacity
    assert held.entered == capacity + queued


async def test_a_client_that_times_out_leaves_its_task_cancelled(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    held = HeldTranscriber()
    async with (
        held.serving() as speech,
        running_service(service_database_url, tmp_path, speech_overrides=speech, capacity=1) as svc,
    ):
        async with sdk(svc, user, timeout=1.0) as client:
            with anyio.fail_after(30), pytest.raises(openai.APITimeoutError):
                await client.audio.transcriptions.create(file=named(speech_clip), model="whisper-1")
        with anyio.fail_after(30):
            (task,) = await until_tasks(svc, user, 1, "cancelled")
            assert await final_status(svc, user, task["id"]) == "cancelled"
    assert task["failure_reason"] == "the caller of the transcription hung up"


async def test_a_client_that_hangs_up_frees_its_slot_for_the_next_in_the_queue(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    held = HeldTranscriber()
    answered: list[str] = []
    async with (
        held.serving() as speech,
        running_service(service_database_url, tmp_path, speech_overrides=speech, capacity=1) as svc,
    ):
        async with sdk(svc, user) as client:

            async def ask(scope: anyio.CancelScope | None = None) -> None:
                with scope or anyio.CancelScope():
                    answer = await client.audio.transcriptions.create(
                        file=named(speech_clip), model="whisper-1"
                    )
                    answered.append(answer.text)

            first = anyio.CancelScope()
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(ask, first)
                    await held.arrivals(1)  # the first holds the only slot
                    group.start_soon(ask)
                    (second,) = await until_tasks(svc, user, 1, "queued")
                    first.cancel()  # its caller hangs up
                    await held.arrivals(2)  # and the second gets the slot
                    held.release.set()
                (gone,) = [t for t in await until_tasks(svc, user, 1, "cancelled")]
                assert await final_status(svc, user, second["id"]) == "completed"
    assert answered == [HEARD]
    assert gone["id"] != second["id"]


async def test_past_the_wait_the_answer_points_at_the_task_which_goes_on(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    held = HeldTranscriber()
    async with (
        held.serving() as speech,
        running_service(
            service_database_url, tmp_path, speech_overrides=speech, transcription_wait_seconds=0.5
        ) as svc,
    ):
        async with sdk(svc, user) as client:
            with anyio.fail_after(30):
                raw = await client.audio.transcriptions.with_raw_response.create(
                    file=named(speech_clip), model="whisper-1", response_format="srt"
                )
        assert raw.status_code == 202
        body = raw.http_response.json()
        url = f"/tasks/{body['task_id']}"
        assert body["url"] == raw.headers["location"] == url
        assert body["status"] not in ("completed", "failed", "cancelled")
        held.release.set()
        with anyio.fail_after(30):
            assert await final_status(svc, user, body["task_id"]) == "completed"
        subtitles = await svc.client.get(f"{url}/transcript?format=srt", headers=auth(user))
    assert subtitles.status_code == 200
    assert HEARD in subtitles.text


async def test_a_service_that_stops_answers_its_waiting_callers_with_the_tasks_url(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    """The task is not cancelled: it resumes at the next start (or on another instance)."""
    held = HeldTranscriber()
    answers: list[tuple[int, dict[str, Any]]] = []
    async with (
        held.serving() as speech,
        running_service(
            service_database_url, tmp_path, speech_overrides=speech, shutdown_grace_seconds=0.5
        ) as svc,
    ):
        async with sdk(svc, user) as client:

            async def ask() -> None:
                raw = await client.audio.transcriptions.with_raw_response.create(
                    file=named(speech_clip), model="whisper-1"
                )
                answers.append((raw.status_code, raw.http_response.json()))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(ask)
                    await held.arrivals(1)
                    await svc.service.drain()
        ((status, body),) = answers
        record = await svc.service.services.store.get(user, uuid.UUID(body["task_id"]))
    assert status == 202
    assert "restarting" in body["message"]
    assert record is not None
    assert record.status == "transcribing"  # persisted as it was: the next start resumes it


async def test_a_task_deleted_while_its_caller_waits_is_a_404_for_the_caller(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    held = HeldTranscriber()
    async with (
        held.serving() as speech,
        running_service(service_database_url, tmp_path, speech_overrides=speech) as svc,
    ):
        async with sdk(svc, user) as client:
            refused: list[openai.NotFoundError] = []

            async def ask() -> None:
                with pytest.raises(openai.NotFoundError) as gone:
                    await client.audio.transcriptions.create(
                        file=named(speech_clip), model="whisper-1"
                    )
                refused.append(gone.value)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(ask)
                    await held.arrivals(1)
                    (task,) = await until_tasks(svc, user, 1, "transcribing")
                    deleted = await svc.client.delete(f"/tasks/{task['id']}", headers=auth(user))
                    assert deleted.status_code == 204
    (error,) = (r.response for r in refused)
    assert error.json()["error"]["code"] == "task_deleted"
    assert error.headers["x-task-id"] == task["id"]
