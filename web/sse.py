"""A Server-Sent Events response that stops when the client goes and pings while idle."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def frame(data: Any, *, id: int | None = None, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is JSON on a single line."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


class EventSink:
    """Where a producer writes frames; pings go out only after ``ping`` s of silence."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = anyio.Lock()
        self._wrote = anyio.Event()

    async def write(self, chunk: bytes) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        self._wrote.set()

    async def keep_alive(self, interval: float) -> None:
        while True:
            self._wrote = anyio.Event()
            with anyio.move_on_after(interval):
                await self._wrote.wait()
                continue
            await self.write(b": ping\n\n")


Producer = Callable[[EventSink], Awaitable[None]]


class EventStreamResponse:
    """Runs ``produce``, a keep-alive and a disconnect listener in one task group.

    Whichever ends first ends the others: the producer finishing closes the
    response; the client leaving cancels the producer (and its subscription).
    """

    def __init__(self, produce: Producer, *, retry_ms: int, ping_seconds: float) -> None:
        self._produce = produce
        self._retry_ms = retry_ms
        self._ping = ping_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        sink = EventSink(send)
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            group.start_soon(sink.keep_alive, self._ping)
            await sink.write(f"retry: {self._retry_ms}\n\n".encode())
            await self._produce(sink)
            group.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client has gone


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
