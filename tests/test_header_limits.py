"""A request head past the limit is refused with 431 and a closed connection, never buffered.

Both of uvicorn's HTTP implementations the service can run (httptools where it is
installed, else h11) are checked on a real server; the service itself once, end to end.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import uvicorn
from sqlalchemy import URL
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.service_helpers import running_service
from web.header_limits import limited_config

pytestmark = pytest.mark.anyio

LIMIT = 16 * 1024


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"headers": len(request.headers), "body": len(body)})


APP = Starlette(routes=[Route("/", _echo, methods=["GET", "POST"])])


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.accepting = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.accepting.set()


@asynccontextmanager
async def _server(implementation: str) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = limited_config(
        APP, max_header_bytes=LIMIT, implementation=implementation, log_level="warning"
    )
    server = _Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        await server.accepting.wait()
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True


async def _send_head(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a request head in pieces, then read the answer until the server closes.

    A server that closes with bytes of ours unread resets the connection, and the reset
    may discard its answer: then what was read is ``b""``.
    """
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        try:
            for start in range(0, len(head), 4096):
                await stream.send(head[start : start + 4096])
            await stream.send(body)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            pass  # the server closed while the rest was on its way
        answer = b""
        try:
            while True:
                answer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            return answer


def _refused(answer: bytes) -> bool:
    """431, or a connection closed with no answer at all (never a 200, never a hang)."""
    return answer == b"" or answer.startswith(b"HTTP/1.1 431")


def _request(header_bytes: int, body: bytes = b"") -> bytes:
    lines = ["POST / HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"X-Filler-{i}: {'a' * 1000}" for i in range(header_bytes // 1000)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
async def test_a_head_past_the_limit_is_431_and_closed(implementation: str) -> None:
    with anyio.fail_after(20):
        async with _server(implementation) as port:
            answer = await _send_head(port, _request(4 * LIMIT))
    assert _refused(answer), answer[:200]


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
async def test_one_header_without_end_is_cut_off_at_the_limit(implementation: str) -> None:
    """A single header line that never ends (the 200 MB header): refused at the limit."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (4 * 1024 * 1024)
    with anyio.fail_after(20):
        async with _server(implementation) as port:
            answer = await _send_head(port, head)
    assert _refused(answer), answer[:200]


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
async def test_a_small_head_past_the_limit_is_answered_431(implementation: str) -> None:
    """Sent whole before the server reads it, and read whole: the 431 reaches the client."""
    head = _request(2 * LIMIT)
    async with _server(implementation) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head)
            with anyio.fail_after(20):
                answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"headers_too_large" in answer


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
async def test_a_head_under_the_limit_with_a_large_body_passes(implementation: str) -> None:
    body = b"x" * (1024 * 1024)
    with anyio.fail_after(20):
        async with _server(implementation) as port:
            answer = await _send_head(port, _request(LIMIT // 2, body), body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"body":1048576' in answer


async def test_the_service_refuses_a_huge_header_on_healthz(
    service_database_url: URL, tmp_path: Path
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (4 * 1024 * 1024)
        with anyio.fail_after(20):
            answer = await _send_head(svc.service.port, head)
        assert _refused(answer), answer[:200]
        assert (await svc.client.get("/healthz")).status_code == 200
