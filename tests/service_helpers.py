"""Running the real service in-process (real uvicorn on a free port) and reading its SSE."""

from __future__ import annotations

import io
import json
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import URL

from service.running import RunningService, open_service
from speech.settings import SpeechSettings
from tests.conftest import SECRET
from web.auth import issue_token
from web.settings import Settings


def auth(user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user)}"}


def settings_for(url: URL, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "data_dir": data_dir,
        "auth_jwt_secret": SECRET,
        "migrate_on_start": False,
        "debug_mode": False,
        "log_level": "warning",
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
        "shutdown_grace_seconds": 5,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@dataclass
class Running:
    service: RunningService
    client: httpx.AsyncClient


@asynccontextmanager
async def running_service(
    url: URL, data_dir: Path, *, speech_overrides: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Running]:
    speech_values: dict[str, Any] = {"engine_workers": 2, **(speech_overrides or {})}
    speech = SpeechSettings(_env_file=None, **speech_values)
    async with open_service(settings_for(url, data_dir, **overrides), speech, url) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            yield Running(service, client)


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    event: str | None
    data: dict[str, Any]


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of an open SSE response, as they arrive (comments and retry skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                raw_id = fields.get("id")
                yield SseEvent(
                    int(raw_id) if raw_id else None, fields.get("event"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def read_stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> list[SseEvent]:
    """Every event of a stream that ends by itself (after the terminal event), but the
    queue positions (``event: position``: not journalled, told only while it waits)."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        return [event async for event in iter_sse(response) if event.event != "position"]


def repeat_wav(wav_bytes: bytes, times: int) -> bytes:
    """The same recording ``times`` over, as one WAV (long audio for slow stages)."""
    with wave.open(io.BytesIO(wav_bytes)) as source:
        params = source.getparams()
        frames = source.readframes(source.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setparams(params)
        target.writeframes(frames * times)
    return out.getvalue()


async def create(
    client: httpx.AsyncClient,
    user: uuid.UUID,
    audio: bytes,
    *,
    filename: str = "speech.wav",
    content_type: str = "audio/wav",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/tasks",
        headers={**auth(user), **(headers or {})},
        files={"file": (filename, audio, content_type)},
        data=fields,
    )
