"""The SSE building blocks: pings only after silence, each live event encoded once."""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from supervisor.events import Broadcast, Event, EventType
from supervisor.fanout import Fanout
from supervisor.lifecycle import Status
from supervisor.messages import Subscription
from tests.fakes import anyio_backend  # noqa: F401
from web.feed import TaskFeed
from web.sse import EventSink, SharedFrames


def _event(seq: int) -> Event:
    return Event(uuid.uuid4(), seq, EventType.STATUS, Status.QUEUED, {}, datetime.now(UTC))


def test_an_event_shared_by_many_streams_is_encoded_once() -> None:
    encoded: list[int] = []

    def encode(event: Broadcast) -> bytes:
        assert isinstance(event, Event)
        encoded.append(event.seq)
        return f"id: {event.seq}\n\n".encode()

    frames = SharedFrames(encode, size=2)
    first, second, third = _event(1), _event(2), _event(3)
    assert {frames(first) for _ in range(1000)} == {b"id: 1\n\n"}
    assert encoded == [1]
    frames(second)
    frames(third)  # the cache holds two: the first is forgotten
    frames(first)
    assert encoded == [1, 2, 3, 1]
    equal_but_new = Event(first.task_id, 1, first.type, first.status, {}, first.created_at)
    frames(equal_but_new)  # a replayed event is another object: encoded on its own
    assert encoded == [1, 2, 3, 1, 1]


# trio's mock clock: the sleeps below take no time and the times are exact.
@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio")]
)
@pytest.mark.anyio
async def test_pings_come_only_after_silence() -> None:
    sent: list[tuple[float, bytes]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append((anyio.current_time(), message["body"]))

    sink = EventSink(send)
    began = anyio.current_time()
    async with anyio.create_task_group() as group:
        group.start_soon(sink.keep_alive, 0.2)
        for _ in range(5):  # writes every 0.05 s: never 0.2 s of silence
            await sink.write(b"data: x\n\n")
            await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # silence from 0.2 s on: a ping every 0.2 s of it
        group.cancel_scope.cancel()
    pings = [at - began for at, body in sent if body == b": ping\n\n"]
    assert pings == [pytest.approx(0.4), pytest.approx(0.6)]


@pytest.mark.anyio
async def test_a_feed_past_the_end_ends_at_the_terminal_event_it_skips() -> None:
    """Last-Event-ID beyond the task's end, followed through the cluster's feed (which,
    unlike an actor's, does not end when the task does): the terminal event ends it."""
    fanout = Fanout(8)
    live = Subscription(None, fanout.add(), fanout)
    feed = TaskFeed(99, [], live, past_end=True)
    fanout.publish(Event(uuid.uuid4(), 5, EventType.STATUS, Status.FAILED, {}, datetime.now(UTC)))
    with anyio.fail_after(5):
        assert [event async for event in feed.events()] == []
    fanout.close()
