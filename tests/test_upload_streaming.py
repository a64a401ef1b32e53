"""Uploads stream: spooled to disk and hashed as they arrive, stored in chunks, capped in
number; a client that hangs up mid-upload is a client error in one log line."""

from __future__ import annotations

import hashlib
import logging
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from anyio import wait_all_tasks_blocked
from sqlalchemy import URL, bindparam, select

from ops import metrics
from store.models import AudioRow
from store.sql import compile_query
from tests.service_helpers import Running, auth, running_service
from tests.stages_helpers import wav_of

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BOUNDARY = "streamingboundary1234"
_SHA = compile_query(
    select(AudioRow.sha256).where(AudioRow.task_id == bindparam("task_id")), idempotent=True
)


def _tone(size: int) -> bytes:
    samples = (size - 44) // 2
    tone = (8000 * np.sin(np.arange(samples) * (2 * np.pi * 220 / 16_000))).astype(np.int16)
    return wav_of(tone, 16_000)


def _multipart(audio: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="long.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head + audio + f"\r\n--{BOUNDARY}--\r\n".encode()


def _request_head(user: uuid.UUID, length: int) -> bytes:
    lines = [
        "POST /tasks HTTP/1.1",
        "Host: x",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in auth(user).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send(port: int, data: bytes, *, hang_up_after: int | None = None) -> bytes:
    """Send ``data`` in 64 KiB pieces (no copy of it is made); the answer, unless hung up."""
    view = memoryview(data)
    end = len(data) if hang_up_after is None else hang_up_after
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        for start in range(0, end, 65536):
            await stream.send(view[start : min(end, start + 65536)])  # type: ignore[arg-type]
        if hang_up_after is not None:
            return b""
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                answer += await stream.receive()
        except anyio.EndOfStream:
            pass
        return answer


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path, capacity=1) as running:
        yield running


async def test_a_large_upload_is_stored_whole_and_hashed(svc: Running, user: uuid.UUID) -> None:
    audio = _tone(6 * MIB)
    body = _multipart(audio)
    with anyio.fail_after(60):
        answer = await _send(svc.service.port, _request_head(user, len(body)) + body)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    task_id = answer.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
    stored = await svc.client.get(f"/tasks/{task_id}/audio", headers=auth(user))
    assert stored.content == audio
    row = await svc.service.services.database.row(_SHA, task_id=uuid.UUID(task_id))
    assert row is not None
    assert row.sha256 == hashlib.sha256(audio).hexdigest()


async def test_an_upload_in_flight_holds_a_small_part_of_its_size_in_memory(
    svc: Running, user: uuid.UUID
) -> None:
    """Before: the whole upload, then a copy for the database (over twice its size)."""
    audio = _tone(16 * MIB)
    request = _request_head(user, len(_multipart(audio))) + _multipart(audio)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with anyio.fail_after(120):
            answer = await _send(svc.service.port, request)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB held for a 16 MiB upload"


async def test_uploads_past_the_cap_are_503_with_retry_after(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    audio = _tone(1 * MIB)
    body = _multipart(audio)
    async with running_service(service_database_url, tmp_path, max_concurrent_uploads=1) as svc:
        slots = svc.service.services.uploads
        port = svc.service.port
        async with await anyio.connect_tcp("127.0.0.1", port) as slow:
            await slow.send(_request_head(user, len(body)) + body[:1000])  # and no more yet
            with anyio.fail_after(10):
                await slots.wait_for(1)
            refused = await svc.client.post(
                "/tasks", headers=auth(user), files={"file": ("a.wav", audio, "audio/wav")}
            )
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == "unavailable"
            await slow.send(body[1000:])
            answer = await slow.receive()
            assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
        with anyio.fail_after(10):
            await slots.wait_for(0)
        again = await svc.client.post(
            "/tasks", headers=auth(user), files={"file": ("a.wav", audio, "audio/wav")}
        )
        assert again.status_code == 201


def _count(status: str) -> float:
    value: float = metrics.HTTP_REQUESTS.labels("/tasks", "POST", status)._value.get()
    return value


async def test_a_client_that_hangs_up_mid_upload_is_one_line_and_a_client_error(
    svc: Running, user: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    audio = _tone(4 * MIB)
    body = _multipart(audio)
    slots = svc.service.services.uploads
    errors_before, client_before = _count("500"), _count("400")
    caplog.set_level(logging.INFO)
    with anyio.fail_after(30):
        await _send(svc.service.port, _request_head(user, len(body)) + body, hang_up_after=MIB)
        await slots.wait_for(1)  # still reading: the hang-up is noticed on a later turn
        await slots.wait_for(0)
        await wait_all_tasks_blocked()  # the answer is sent and counted
    assert _count("400") == client_before + 1
    assert _count("500") == errors_before
    assert slots.in_flight == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if r.exc_info] == []
    hung_up = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert len(hung_up) == 1
    assert await svc.service.services.store.count() == 0
