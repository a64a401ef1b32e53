"""A Server-Sent Events response that stops when the client goes and pings while idle."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from ops.metrics import SSE_OPEN
from supervisor.events import Broadcast

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
        # No extra trip round the event loop when the lock is free (nearly always):
        # the producer's receive has just yielded anyway.
        self._lock = anyio.Lock(fast_acquire=True)
        self._last_write = anyio.current_time()

    async def write(self, chunk: bytes) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        self._last_write = anyio.current_time()

    async def keep_alive(self, interval: float) -> None:
        """Ping after ``interval`` s without a write.

        It wakes once per interval and looks at the time of the last write: a write
        wakes nobody (with 1,000 streams, an event used to wake 2,000 tasks).
        """
        while True:
            due = self._last_write + interval
            if anyio.current_time() >= due:
                await self.write(b": ping\n\n")
            else:
                await anyio.sleep_until(due)


class SharedFrames:
    """Each event's frame, encoded once for every stream that carries it.

    The actor hands the same ``Event`` object to all its subscribers, so the last
    few events are remembered by identity (each entry keeps its event alive, so an
    id is never reused while remembered). Replayed events are new objects: misses.
    """

    def __init__(self, encode: Callable[[Broadcast], bytes], size: int = 1024) -> None:
        self._encode = encode
        self._size = size
        self._frames: dict[int, tuple[Broadcast, bytes]] = {}

    def __call__(self, event: Broadcast) -> bytes:
        known = self._frames.get(id(event))
        if known is not None and known[0] is event:
            return known[1]
        encoded = self._encode(event)
        if len(self._frames) >= self._size:
            del self._frames[next(iter(self._frames))]  # the oldest
        self._frames[id(event)] = (event, encoded)
        return encoded


Producer = Callable[[EventSink], Awaitable[None]]
Closer = Callable[[], Awaitable[None]]

#: The longest wait for the last, empty body message of a stream to be taken.
FINAL_WRITE_SECONDS = 5.0


class EventStreamResponse:
    """Runs ``produce``, a keep-alive and a disconnect listener in one task group.

    Whichever ends first ends the others: the producer finishing closes the
    response; the client leaving cancels the producer (and its subscription).
    """

    def __init__(
        self,
        produce: Producer,
        *,
        retry_ms: int,
        ping_seconds: float,
        close: Closer | None = None,
        final_write_seconds: float = FINAL_WRITE_SECONDS,
    ) -> None:
        self._produce = produce
        self._retry_ms = retry_ms
        self._ping = ping_seconds
        self._close = close
        self._final_write = final_write_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream; ``close`` runs however it ends (even if the response never started)."""
        try:
            await self._stream(receive, send)
        finally:
            if self._close is not None:
                with anyio.CancelScope(shield=True):
                    await self._close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        SSE_OPEN.inc()
        try:
            await self._events(receive, send)
        finally:
            SSE_OPEN.dec()

    async def _events(self, receive: Receive, send: Send) -> None:
        sink = EventSink(send)
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            group.start_soon(sink.keep_alive, self._ping)
            await sink.write(f"retry: {self._retry_ms}\n\n".encode())
            await self._produce(sink)
            group.cancel_scope.cancel()
        # Shielded so that the response ends cleanly on shutdown, bounded so that a
        # client that reads nothing cannot hold the stream open.
        with anyio.move_on_after(self._final_write, shield=True):
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
