"""The legacy stream through a queue, a stage retry and completion, and its reconnects."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.ilps_helpers import (
    VOCABULARY,
    RawStream,
    android_pcm,
    legacy_stream,
    read_legacy,
    read_whole,
    serve,
    transcribe,
)
from tests.service_helpers import auth, iter_sse, running_service

pytestmark = pytest.mark.anyio

IPA = "ɪ t w ə z ð ə b ɛ s t"


class Transcribing:
    """An ILPS transcribing service: the 1st call waits for ``release``, the 2nd is a 503."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_call = anyio.Event()
        self.release = anyio.Event()

    async def answer(self, request: Request) -> Response:
        async with request.form() as form:
            assert form["lang"] == "english"
        self.calls += 1
        if self.calls == 1:
            self.first_call.set()
            await self.release.wait()
        if self.calls == 2:
            return JSONResponse({"detail": "busy"}, 503)
        return JSONResponse({"transcription": IPA})


async def test_queue_retry_and_completion_show_only_contract_statuses(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    fake = Transcribing()
    async with serve(Starlette(routes=[Route("/", fake.answer, methods=["POST"])])) as port:
        speech = {"service_transcribing_host": "127.0.0.1", "service_transcribing_port": port}
        async with running_service(
            service_database_url,
            tmp_path,
            ilps_compat=True,
            capacity=1,
            sse_ping_seconds=0.1,
            speech_overrides=speech,
        ) as svc:
            client = svc.client
            pcm = android_pcm(speech_clip)
            first = (await transcribe(client, user, pcm)).json()["id"]
            with anyio.fail_after(30):
                await fake.first_call.wait()  # the first task holds the only slot
            second = (await transcribe(client, user, pcm)).json()["id"]

            whole = RawStream()
            head = RawStream()
            following = anyio.Event()
            async with anyio.create_task_group() as group:

                async def follow() -> None:
                    async with legacy_stream(client, user, second) as response:
                        await read_legacy(response, whole, first=following)

                group.start_soon(follow)
                with anyio.fail_after(30):
                    await following.wait()
                    async with legacy_stream(client, user, second) as response:
                        await read_legacy(response, head, stop_after=1)
                    # The first task's stream starts with its status of the moment.
                    async with legacy_stream(client, user, first) as response:
                        now = await read_legacy(response, RawStream(), stop_after=1)
                    assert now.statuses == ["transcribing"]
                    await whole.pinged.wait()  # silence while queued: the stream pings
                fake.release.set()

                with anyio.fail_after(60):
                    rest = await read_whole(client, user, second, head.ids[-1])

            assert head.statuses == ["created"]  # queued is created to ILPS clients
            assert whole.statuses == [
                "created",
                "started",
                "preprocessing",
                "transcribing",
                "completed",
            ]
            assert set(whole.statuses) <= VOCABULARY
            assert ": ping" in whole.comments
            assert whole.retry == ["retry: 15000"]
            ids = whole.seqs
            assert ids == sorted(set(ids))
            # A reconnect with Last-Event-ID repeats nothing and misses nothing.
            assert head.ids + rest.ids == ids
            assert [e.data for e in head.events + rest.events] == [e.data for e in whole.events]
            for event in whole.events:
                assert json.loads(event.data) == {
                    "event": "status_updated",
                    "task_id": second,
                    "status": json.loads(event.data)["status"],
                    "retry": 15000,
                }

            # The native journal did hold a queue and a retry; the legacy stream hid them.
            async with client.stream(
                "GET", f"/tasks/{second}/events", headers=auth(user)
            ) as response:
                native = [e async for e in iter_sse(response)]
            native_statuses = [e.data["status"] for e in native if e.event == "status"]
            assert "queued" in native_statuses
            assert [e.data["payload"]["stage"] for e in native if e.event == "retry"] == [
                "transcribing"
            ]
            assert fake.calls == 3

            ended = await client.post(
                f"/{second}/stream",
                json={"user_id": str(user)},
                headers={"Last-Event-ID": str(ids[-1])},
            )
            assert ended.status_code == 204  # seen to the end: EventSource stops reconnecting
            assert (await read_whole(client, user, second)).statuses == ["completed"]
            after = await read_whole(client, user, first, now.ids[0])
            assert after.statuses == ["completed"]
            detail = (await client.post(f"/{second}", json={"user_id": str(user)})).json()
            assert detail["status"] == "completed"
            assert detail["result"] == IPA
