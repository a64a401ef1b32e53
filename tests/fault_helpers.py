"""For the fault and hostile-input suites: ILPS stage stubs, unique clips, the journal as rows.

The stubs are small real HTTP servers (uvicorn in a thread, so sync and async tests
share them). Each task's upload carries its ``text_id`` in its first samples, so
the preprocessing and transcribing stubs know which task a call is for, as the
feedback stub does from the request body: every stage call is counted per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import psutil
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from speech.wav import to_wav
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status
from tests.conftest import SECRET
from tests.process_helpers import clean_env
from tests.stages_helpers import serve
from web.auth import issue_token

RATE = 16_000
_TONE = (np.sin(np.arange(RATE * 3 // 10) * 2 * np.pi * 220 / RATE) * 8000).astype("<i2")


def tagged_clip(text_id: uuid.UUID) -> bytes:
    """0.3 s of a 16 kHz mono tone whose first four samples are ``text_id``'s first 8 bytes."""
    samples = _TONE.copy()
    samples[:4] = np.frombuffer(text_id.bytes[:8], dtype="<i2")
    return to_wav(samples.tobytes())


async def upload_tagged(client: httpx.AsyncClient, user: uuid.UUID) -> str:
    """Create a task whose clip carries its own text_id (the stubs read it back); its id."""
    text_id = uuid.uuid4()
    answer = await client.post(
        "/tasks",
        headers={"Authorization": f"Bearer {issue_token(SECRET, user)}"},
        files={"file": ("a.wav", tagged_clip(text_id), "audio/wav")},
        data={"text_id": str(text_id)},
    )
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def _pcm_of(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as source:
        return source.readframes(source.getnframes())


@dataclass
class Call:
    stage: str
    #: The first 8 bytes of the task's text_id, hex (the tag in its audio).
    tag: str
    at: float


@dataclass
class IlpsStubs:
    """The three ILPS stage services as real HTTP servers on loopback."""

    #: Seconds the transcribing service takes to answer.
    transcribe_delay: float = 0.05
    calls: list[Call] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def env(self) -> dict[str, str]:
        """The MANAGER_SERVICE_* variables pointing the service at these stubs."""
        env: dict[str, str] = {}
        for name, port in self.ports.items():
            env[f"MANAGER_SERVICE_{name.upper()}_HOST"] = "127.0.0.1"
            env[f"MANAGER_SERVICE_{name.upper()}_PORT"] = str(port)
        return env

    def speech_overrides(self) -> dict[str, Any]:
        """The same, as SpeechSettings fields for an in-process service."""
        overrides: dict[str, Any] = {}
        for name, port in self.ports.items():
            overrides[f"service_{name}_host"] = "127.0.0.1"
            overrides[f"service_{name}_port"] = port
        return overrides

    async def _hold(self) -> None:
        """Take ``transcribe_delay`` seconds, or less if the stubs are closing."""
        if self._release is None:
            self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.transcribe_delay)

    def close(self) -> None:
        """End the calls still being held (the servers can then stop at once)."""
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def _record(self, stage: str, tag: str) -> None:
        self.calls.append(Call(stage, tag, time.time()))

    async def _upload(self, request: Request) -> bytes | None:
        """The PCM of the ``file`` part; None when the caller went away (it was killed)."""
        try:
            async with request.form() as form:
                upload = form["file"]
                assert not isinstance(upload, str)
                return _pcm_of(await upload.read())
        except ClientDisconnect:
            return None

    async def _preprocess(self, request: Request) -> Response:
        pcm = await self._upload(request)
        if pcm is None:
            return Response(status_code=400)
        self._record("preprocessing", pcm[:8].hex())
        return Response(to_wav(pcm), media_type="audio/wav")

    async def _transcribe(self, request: Request) -> Response:
        pcm = await self._upload(request)
        if pcm is None:
            return Response(status_code=400)
        self._record("transcribing", pcm[:8].hex())
        await self._hold()
        return JSONResponse({"transcription": "ɪ t w ʌ z ð ə b ɛ s t"})

    async def _feedback(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ClientDisconnect:
            return Response(status_code=400)
        self._record("feedback", uuid.UUID(body["text_id"]).bytes[:8].hex())
        return JSONResponse({"accuracy": 87.5, "mistakes": []})

    def app(self, name: str) -> Starlette:
        handler = {
            "preprocessing": self._preprocess,
            "transcribing": self._transcribe,
            "feedback": self._feedback,
        }[name]
        return Starlette(routes=[Route("/", handler, methods=["POST"])])


@contextmanager
def ilps_stubs(transcribe_delay: float = 0.05) -> Iterator[IlpsStubs]:
    stubs = IlpsStubs(transcribe_delay)
    with (
        serve(stubs.app("preprocessing")) as pre,
        serve(stubs.app("transcribing")) as tra,
        serve(stubs.app("feedback")) as fee,
    ):
        for name, url in (("preprocessing", pre), ("transcribing", tra), ("feedback", fee)):
            stubs.ports[name] = int(url.rsplit(":", 1)[1])
        try:
            yield stubs
        finally:
            stubs.close()


def service_env(**extra: str) -> dict[str, str]:
    """A real process's environment: the tests' JWT secret, quiet logs, quick backoff."""
    return clean_env(
        MANAGER_AUTH_JWT_SECRET=SECRET,
        MANAGER_LOG_LEVEL="warning",
        MANAGER_DEBUG_MODE="false",
        MANAGER_BACKOFF_BASE_SECONDS="0.05",
        MANAGER_BACKOFF_CAP_SECONDS="0.2",
        **extra,
    )


# The journal, read straight from PostgreSQL.


def embedded_socket_dir(data_dir: Path) -> str:
    """The socket directory of the embedded server running on ``data_dir`` (postmaster.pid)."""
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    return lines[4]


@dataclass(frozen=True)
class TaskRowView:
    id: uuid.UUID
    status: str
    last_seq: int
    text_id: uuid.UUID | None
    failure_reason: str | None
    created_at: datetime


async def read_journal(
    connect: dict[str, Any],
) -> tuple[dict[uuid.UUID, TaskRowView], dict[uuid.UUID, list[Event]]]:
    """Every task row and its events in seq order."""
    connection = await asyncpg.connect(**connect)
    try:
        tasks = await connection.fetch(
            "SELECT id, status, last_seq, text_id, failure_reason, created_at FROM tasks"
        )
        rows = await connection.fetch(
            "SELECT task_id, seq, type, status, payload, created_at FROM task_events"
            " ORDER BY task_id, seq"
        )
    finally:
        await connection.close()
    events: dict[uuid.UUID, list[Event]] = {t["id"]: [] for t in tasks}
    for r in rows:
        payload = r["payload"]
        if isinstance(payload, str):  # asyncpg hands JSONB over as text
            payload = json.loads(payload)
        events[r["task_id"]].append(
            Event(
                r["task_id"],
                r["seq"],
                EventType(r["type"]),
                Status(r["status"]),
                payload,
                r["created_at"],
            )
        )
    views = {t["id"]: TaskRowView(**dict(t)) for t in tasks}
    return views, events


# Processes.


def worker_processes(parent: int | None = None) -> list[psutil.Process]:
    """anyio's engine worker processes (``python -m anyio.to_process``), of ``parent`` or all."""
    found = []
    candidates = (
        psutil.Process(parent).children(recursive=True)
        if parent is not None
        else list(psutil.process_iter())
    )
    for proc in candidates:
        try:
            if "anyio.to_process" in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def peak_rss(pid: int) -> int:
    """The peak resident set size of a live process, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def seed_from_env(name: str = "FAULT_SEED") -> int:
    """A seed for the random parts of a suite: $FAULT_SEED to replay one, else a fresh one."""
    raw = os.environ.get(name)
    return int(raw) if raw else int.from_bytes(os.urandom(4), "big")


class Submitter(threading.Thread):
    """Posts tasks one after another until told to stop or the service goes away."""

    def __init__(self, url: str, headers: dict[str, str], count: int) -> None:
        super().__init__(daemon=True)
        self._url = url
        self._headers = headers
        self._count = count
        self.stop = threading.Event()
        #: text_ids whose POST answered 201.
        self.accepted: list[uuid.UUID] = []
        #: Answers other than 201, as (status, body).
        self.refused: list[tuple[int, str]] = []

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self._url, headers=self._headers, timeout=10) as client:
            for _ in range(self._count):
                if self.stop.is_set():
                    return
                text_id = uuid.uuid4()
                try:
                    answer = client.post(
                        "/tasks",
                        files={"file": ("a.wav", tagged_clip(text_id), "audio/wav")},
                        data={"text_id": str(text_id)},
                    )
                except httpx.TransportError:  # killed: that task may or may not exist
                    return
                if answer.status_code != 201:
                    self.refused.append((answer.status_code, answer.text))
                    return
                self.accepted.append(text_id)
