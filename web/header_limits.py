"""uvicorn's HTTP protocols with a limit on a request's head (request line and headers).

httptools buffers a request's headers whole, however long: one 200 MB header costs
the process its size in memory before any handler runs. These protocols count the
bytes received while a request's head is incomplete and, past the limit, answer 431
and close the connection. A head that arrived whole in one read (a read is bounded)
and is still past the limit is answered 431 by ``HeadLimit`` before any route runs.
A body is not counted: the limits on bodies are the routes'.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

#: Long enough for a bearer token, a session cookie and a proxy's headers, several times.
DEFAULT_MAX_HEADER_BYTES = 32 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


def _detail(limit: int) -> bytes:
    return b'{"error":"headers_too_large","detail":"the request headers exceed %d bytes"}' % limit


def _refusal(limit: int) -> bytes:
    body = _detail(limit)
    return _REFUSAL % (len(body), body)


class HeadLimit:
    """ASGI middleware: a request whose path, query and headers pass ``limit`` bytes is 431."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _head_size(scope) > self._limit:
            body = _detail(self._limit)
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 431, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)


def _head_size(scope: Scope) -> int:
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class _HeadCounter:
    """Counts what arrives while a request's head is incomplete."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_head = True
        self.seen = 0

    def received(self, size: int) -> None:
        if self.in_head:
            self.seen += size

    def head_done(self) -> None:
        self.in_head = False

    def next_request(self) -> None:
        self.in_head, self.seen = True, 0

    def exceeded(self) -> bool:
        return self.in_head and self.seen > self.limit


def _refuse(transport: asyncio.Transport, limit: int) -> None:
    if not transport.is_closing():
        transport.write(_refusal(limit))
        transport.close()


class LimitedH11(H11Protocol):
    """h11 with the head limit (h11's own buffer limit, a 400, stays as a backstop)."""

    def __init__(self, config: Config, server_state: ServerState, **kwargs: Any) -> None:
        super().__init__(config, server_state, **kwargs)
        self._head = _HeadCounter(max_header_bytes(config))

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if not self._head.in_head:
                self._head.next_request()  # the previous request is done
            self._head.received(len(data))
        else:
            self._head.head_done()
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and self._head.exceeded():
            _refuse(self.transport, self._head.limit)


def max_header_bytes(config: Config) -> int:
    limit: int = getattr(config, "max_header_bytes", DEFAULT_MAX_HEADER_BYTES)
    return limit


def _httptools_class() -> type[asyncio.Protocol] | None:
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedHttpTools(HttpToolsProtocol):
        """httptools with the head limit: it has none of its own."""

        def __init__(self, config: Config, server_state: ServerState, **kwargs: Any) -> None:
            super().__init__(config, server_state, **kwargs)
            self._head = _HeadCounter(max_header_bytes(config))

        def data_received(self, data: bytes) -> None:
            self._head.received(len(data))
            super().data_received(data)
            if self._head.exceeded():
                _refuse(self.transport, self._head.limit)

        def on_headers_complete(self) -> None:
            self._head.head_done()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head.next_request()

    return LimitedHttpTools


#: httptools where it is installed (uvicorn's choice too), else h11.
LimitedHttpTools = _httptools_class()


def protocol_class(implementation: str = "auto") -> type[asyncio.Protocol]:
    """The limited protocol: ``httptools``, ``h11``, or ``auto`` (httptools if installed)."""
    if implementation == "h11" or LimitedHttpTools is None:
        return LimitedH11
    return LimitedHttpTools


def limited_config(
    app: Any, *, max_header_bytes: int, implementation: str = "auto", **options: Any
) -> Config:
    """A uvicorn Config whose protocol refuses heads past ``max_header_bytes``."""
    config = Config(
        HeadLimit(app, max_header_bytes),
        http=protocol_class(implementation),
        # h11's own limit on an incomplete event, above ours: a backstop, never first.
        h11_max_incomplete_event_size=max_header_bytes + 1024 * 1024,
        **options,
    )
    config.max_header_bytes = max_header_bytes  # type: ignore[attr-defined]
    return config
