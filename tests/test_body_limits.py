"""Every JSON body is read with a limit: past it a 413, and the rest is never read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from tests.service_helpers import Running, auth, running_service
from web.bodies import JSON_BODY_LIMIT

pytestmark = pytest.mark.anyio

OPERATOR = uuid.uuid4()


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(
        service_database_url, tmp_path, admin_users=[OPERATOR], ilps_compat=True
    ) as running:
        yield running


async def _large() -> AsyncIterator[bytes]:
    """A chunked body (no length said) of 4 MiB: read whole, it would be a 422."""
    yield b'{"token": "'
    for _ in range(64):
        yield b"x" * 65536
    yield b'"}'


ROUTES = [
    ("/session", {"Sec-Fetch-Site": "same-origin"}),
    ("/admin/retry", auth(OPERATOR)),
    ("/", {}),  # the ILPS list
    (f"/{uuid.uuid4()}", {}),  # an ILPS detail
]


@pytest.mark.parametrize(("path", "headers"), ROUTES)
async def test_a_chunked_body_past_the_limit_is_413_without_reading_it_whole(
    svc: Running, path: str, headers: dict[str, str]
) -> None:
    with anyio.fail_after(20):
        answer = await svc.client.post(path, content=_large(), headers=headers)
    assert answer.status_code == 413
    body = answer.json()
    assert str(JSON_BODY_LIMIT) in (body.get("detail") or "")


@pytest.mark.parametrize(("path", "headers"), ROUTES)
async def test_a_declared_length_past_the_limit_is_413_before_the_body(
    svc: Running, path: str, headers: dict[str, str]
) -> None:
    """400 MB announced, none sent: the answer comes at once."""
    port = svc.service.port
    head = [f"POST {path} HTTP/1.1", "Host: x", "Content-Length: 400000000"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(("\r\n".join(head) + "\r\n\r\n").encode())
            answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
