"""For the OpenAI-compatible route's tests: the official SDK pointed at a real service, and a
fake OpenAI-compatible transcription server whose answers a test releases."""

from __future__ import annotations

import io
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import SECRET
from tests.ilps_helpers import serve
from tests.service_helpers import Running, auth, iter_sse
from web.auth import issue_token

#: What the fake server hears in every recording.
HEARD = "hello there"


def sdk(svc: Running, user: uuid.UUID, **options: Any) -> openai.AsyncOpenAI:
    """The official client, as its users configure it: the service's URL and a token."""
    settings: dict[str, Any] = {
        "base_url": f"{svc.service.url}/v1",
        "api_key": issue_token(SECRET, user),
        "max_retries": 0,
        "timeout": 500.0,
        **options,
    }
    return openai.AsyncOpenAI(**settings)


def silence(seconds: float) -> bytes:
    """A 16 kHz mono WAV of nothing: the recogniser finds no words in it, and the task fails."""
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16_000)
        target.writeframes(np.zeros(int(16_000 * seconds), dtype="<i2").tobytes())
    return out.getvalue()


def named(audio: bytes, name: str = "speech.wav") -> tuple[str, io.BytesIO, str]:
    return (name, io.BytesIO(audio), "audio/wav")


async def tasks_of(svc: Running, user: uuid.UUID, status: str | None = None) -> list[Any]:
    query = f"?status={status}" if status else ""
    answer = await svc.client.get(f"/tasks{query}", headers=auth(user))
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def until_tasks(svc: Running, user: uuid.UUID, count: int, status: str) -> list[Any]:
    """Wait (bound it with fail_after) until ``count`` of the user's tasks have ``status``.

    A task made by a synchronous request has no id the test knows before it ends, so
    its list is read again every 20 ms meanwhile.
    """
    while len(found := await tasks_of(svc, user, status)) < count:  # noqa: ASYNC110 (remote state)
        await anyio.sleep(0.02)
    return found


async def final_status(svc: Running, user: uuid.UUID, task_id: str) -> str:
    """The task's status once its event stream has ended (after its terminal event)."""
    async with svc.client.stream("GET", f"/tasks/{task_id}/events", headers=auth(user)) as response:
        if response.status_code == 200:
            async for _ in iter_sse(response):
                pass
    task = (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).json()
    status: str = task["status"]
    return status


@dataclass
class HeldTranscriber:
    """An OpenAI-compatible transcription server that answers only once ``release`` is set.

    ``entered`` counts the requests that reached it; ``running`` those it holds now.
    """

    release: anyio.Event = field(default_factory=anyio.Event)
    entered: int = 0
    running: int = 0
    most_running: int = 0
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    async def arrivals(self, count: int) -> None:
        """Wait (bound it with fail_after) until ``count`` requests have arrived."""
        while self.entered < count:
            await self._arrived.wait()

    async def _transcribe(self, request: Request) -> Response:
        async with request.form() as form:
            assert form.get("model") == "whisper-1"
        self.entered += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        arrived, self._arrived = self._arrived, anyio.Event()
        arrived.set()
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        words = [
            {"word": "hello", "start": 0.1, "end": 0.4, "probability": 0.9},
            {"word": "there", "start": 0.5, "end": 0.8, "probability": 0.8},
        ]
        return JSONResponse({"text": HEARD, "words": words})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[dict[str, Any]]:
        """Serve on loopback; yields the speech settings that make it the transcriber."""
        app = Starlette(
            routes=[Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"])]
        )
        async with serve(app) as port:
            try:
                yield {"openai_base_url": f"http://127.0.0.1:{port}/v1"}
            finally:
                self.release.set()
