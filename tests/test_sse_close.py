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


async def test_the_last_write_to_a_client_that_reads_nothing_gives_up_in_time() -> None:
    closed: list[bool] = []
    stuck = anyio.Event()

    async def produce(sink: EventSink) -> None:
        pass

    async def close() -> None:
        closed.append(True)

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            stuck.set()
            await anyio.sleep_forever()  # a client whose window never opens again

    response = EventStreamResponse(
        produce, retry_ms=1000, ping_seconds=15, close=close, final_write_seconds=0.05
    )
    with anyio.fail_after(5):
        await response({"type": "http"}, receive, send)
    assert stuck.is_set()
    assert closed == [True]
