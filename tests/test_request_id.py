"""``X-Request-ID``: taken (sanitised, bounded) or generated, on every answer and log line."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import URL
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops.logs import JsonFormatter
from tests.metrics_helpers import moved, parse
from tests.service_helpers import auth, create, running_service
from web.errors import on_crash
from web.observed import MAX_REQUEST_ID, Observed, request_id_of

pytestmark = pytest.mark.anyio
GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"abc-123", "abc-123"),
        (b"trace:4bf92f35.77_x", "trace:4bf92f35.77_x"),
        (b"a b<script>\"\\'\r\n", "abscript"),
        ("caf\u00e9".encode(), "caf"),
        (b"x" * 1000, "x" * MAX_REQUEST_ID),
    ],
)
def test_a_clients_request_id_is_sanitised_and_bounded(sent: bytes, kept: str) -> None:
    assert request_id_of(sent) == kept


@pytest.mark.parametrize("sent", [None, b"", b"<>\"' \t"])
def test_a_request_id_is_generated_when_none_usable_is_sent(sent: bytes | None) -> None:
    assert GENERATED.match(request_id_of(sent))
    assert request_id_of(sent) != request_id_of(sent)


async def test_every_answer_carries_it_errors_and_streams_too(
    service_database_url: URL,
    tmp_path: Path,
    user: uuid.UUID,
    speech_clip: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    async with running_service(
        service_database_url, tmp_path, debug_mode=True, log_level="info"
    ) as svc:
        client = svc.client
        echoed = await client.get("/healthz", headers={"X-Request-ID": "probe-7"})
        assert echoed.headers["x-request-id"] == "probe-7"
        cleaned = await client.get("/healthz", headers={b"X-Request-ID": b"evil\xff id;"})
        assert cleaned.headers["x-request-id"] == "evilid"
        fresh = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(2)]
        assert all(GENERATED.match(value) for value in fresh)
        assert fresh[0] != fresh[1]

        unauthorised = await client.get("/tasks", headers={"X-Request-ID": "no-token"})
        assert unauthorised.status_code == 401
        assert unauthorised.headers["x-request-id"] == "no-token"
        unknown = await client.get("/nowhere", headers={"X-Request-ID": "lost"})
        assert unknown.status_code == 404
        assert unknown.headers["x-request-id"] == "lost"

        task_id = (await create(client, user, speech_clip)).json()["id"]
        headers = {**auth(user), "X-Request-ID": "stream-1"}
        with anyio.fail_after(60):
            async with client.stream("GET", f"/tasks/{task_id}/events", headers=headers) as sse:
                assert sse.status_code == 200
                assert sse.headers["x-request-id"] == "stream-1"
                await sse.aread()

    formatter = JsonFormatter()
    access = [formatter.format(r) for r in caplog.records if r.name == "uvicorn.access"]
    for request_id in ("probe-7", "evilid", "no-token", "lost", "stream-1", *fresh):
        assert sum(f'"request_id": "{request_id}"' in line for line in access) == 1, request_id


async def test_a_crash_answers_500_with_its_request_id_and_is_counted() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("internal detail")

    app = Observed(
        Starlette(routes=[Route("/boom", boom)], exception_handlers={Exception: on_crash})
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    before = parse(_exposition())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "crash-1"
    assert "internal detail" not in answer.text
    labels = {"route": "/boom", "method": "GET", "status": "500"}
    assert moved(before, parse(_exposition()), "stm_http_requests_total", **labels) == 1


def _exposition() -> str:
    from ops.metrics import exposition

    return exposition()[0].decode()
