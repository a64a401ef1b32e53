"""For the ILPS compatibility tests: the gateway's requests, Android PCM, real HTTP fakes."""

from __future__ import annotations

import io
import json
import uuid
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import numpy as np
import uvicorn
from starlette.types import ASGIApp

from service.running import bind

#: The statuses ILPS clients know (shared/docs/ILPS-CONTRACT.md).
VOCABULARY = {
    "created",
    "started",
    "preprocessing",
    "transcribing",
    "evaluating",
    "completed",
    "failed",
    "unknown",
}


def read_wav(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    """Mono s16 samples and the rate of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data)) as source:
        assert source.getnchannels() == 1
        assert source.getsampwidth() == 2
        rate = source.getframerate()
        return np.frombuffer(source.readframes(source.getnframes()), dtype="<i2"), rate


def android_pcm(wav_bytes: bytes) -> bytes:
    """The recording as the ILPS Android app sends it: headerless s16le, 44,100 Hz, stereo."""
    samples, rate = read_wav(wav_bytes)
    count = round(len(samples) * 44_100 / rate)
    resampled = np.interp(
        np.arange(count) * rate / 44_100, np.arange(len(samples)), samples.astype(np.float64)
    )
    mono = np.clip(np.round(resampled), -32768, 32767).astype("<i2")
    return np.repeat(mono, 2).tobytes()  # L R L R ...


def mono_16k_wav(wav_bytes: bytes) -> bytes:
    """A 16 kHz mono WAV of a 48 kHz mono one (every third sample: enough for a fake)."""
    samples, rate = read_wav(wav_bytes)
    assert rate == 48_000
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16_000)
        target.writeframes(samples[::3].tobytes())
    return out.getvalue()


async def transcribe(
    client: httpx.AsyncClient,
    user: uuid.UUID,
    audio: bytes,
    *,
    text_id: uuid.UUID | None = None,
    title: str = "The best of times",
    filename: str = "audio_record.pcm",
) -> httpx.Response:
    """``POST /transcribe`` exactly as the ILPS gateway forwards the app's upload."""
    return await client.post(
        "/transcribe",
        data={"title": title, "text_id": str(text_id or uuid.uuid4()), "user_id": str(user)},
        files={"file": (filename, audio, "application/octet-stream")},
    )


@dataclass
class RawEvent:
    id: int | None
    data: str
    lines: list[str]


@dataclass
class RawStream:
    """Everything a legacy stream sent, as text: events, comments and the ``retry:`` line."""

    events: list[RawEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    #: Set at the first comment (a ping) on the stream.
    pinged: anyio.Event = field(default_factory=anyio.Event)

    @property
    def statuses(self) -> list[str]:
        return [json.loads(e.data)["status"] for e in self.events]

    @property
    def ids(self) -> list[int | None]:
        return [e.id for e in self.events]

    @property
    def seqs(self) -> list[int]:
        """The ``id:`` of every event, checking that each has one."""
        seqs = [e.id for e in self.events if e.id is not None]
        assert len(seqs) == len(self.events), f"an event without id: {self.ids}"
        return seqs


async def raw_events(response: httpx.Response, into: RawStream) -> AsyncGenerator[RawEvent, None]:
    """Each event of an open legacy stream as it arrives, also recorded (with the
    comments and the ``retry:`` line) in ``into``."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            into.comments.append(line)
            into.pinged.set()
        elif line.startswith("retry:"):
            into.retry.append(line)
        elif line:
            lines.append(line)
        elif lines:
            fields = dict(ln.split(": ", 1) for ln in lines)
            raw_id = fields.get("id")
            event = RawEvent(int(raw_id) if raw_id else None, fields["data"], lines)
            into.events.append(event)
            lines = []
            yield event


async def read_legacy(
    response: httpx.Response,
    into: RawStream,
    *,
    stop_after: int | None = None,
    first: anyio.Event | None = None,
) -> RawStream:
    """Read an open legacy stream to its end (or ``stop_after`` events) into ``into``;
    ``first`` is set once the first event has arrived."""
    async with aclosing(raw_events(response, into)) as events:
        async for _ in events:
            if first is not None:
                first.set()
            if stop_after is not None and len(into.events) >= stop_after:
                break
    return into


@asynccontextmanager
async def legacy_stream(
    client: httpx.AsyncClient, user: uuid.UUID, task_id: str, last_event_id: int | None = None
) -> AsyncIterator[httpx.Response]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    body = {"user_id": str(user)}
    async with client.stream("POST", f"/{task_id}/stream", json=body, headers=headers) as response:
        yield response


async def read_whole(
    client: httpx.AsyncClient, user: uuid.UUID, task_id: str, last_event_id: int | None = None
) -> RawStream:
    async with legacy_stream(client, user, task_id, last_event_id) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return await read_legacy(response, RawStream())


class _Server(uvicorn.Server):
    def capture_signals(self) -> Any:
        return nullcontext()


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[int]:
    """Run ``app`` under a real uvicorn on a free port of 127.0.0.1; yields the port."""
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = _Server(config)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])  # listening already: no wait for start-up
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True
    finally:
        sock.close()
