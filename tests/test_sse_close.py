"""An event stream releases what it holds however it ends, even before it starts."""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Message

from tests.fakes import anyio_backend  # noqa: F401
from web.sse import EventSink, EventStreamResponse

pytestmark = pytest.mark.anyio


async def test_a_stream_whose_response_cannot_start_still_closes_its_feed() -> None:
    closed: list[bool] = []
    produced: list[bool] = []

    async def produce(sink: EventSink) -> None:
        produced.append(True)

    async def close() -> None:
        closed.append(True)

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        raise OSError("the client has gone")

    response = EventStreamResponse(produce, retry_ms=1000, ping_seconds=15, close=close)
    with anyio.fail_after(5), pytest.raises(OSError, match="gone"):
        await response({"type": "http"}, receive, send)
    assert produced == []
    assert closed == [True]
