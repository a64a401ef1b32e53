"""Fan-out of events to subscribers: every event to everyone, never waiting for anyone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from supervisor.events import Event, EventType
from supervisor.fanout import Fanout
from supervisor.lifecycle import Status
from tests.fakes import anyio_backend  # noqa: F401

TASK = uuid4()


class Streams:
    """Makes fan-outs and subscribers, and closes them all when the test ends."""

    def __init__(self) -> None:
        self._fanouts: list[Fanout] = []
        self._streams: list[MemoryObjectReceiveStream[Event]] = []

    def fanout(self, buffer: int) -> Fanout:
        self._fanouts.append(Fanout(buffer))
        return self._fanouts[-1]

    def add(self, fanout: Fanout) -> MemoryObjectReceiveStream[Event]:
        stream = fanout.add()
        assert isinstance(stream, MemoryObjectReceiveStream)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        for fanout in self._fanouts:
            fanout.close()
        for stream in self._streams:
            stream.close()


@pytest.fixture
def streams() -> Iterator[Streams]:
    made = Streams()
    yield made
    made.close()


def event(seq: int) -> Event:
    return Event(TASK, seq, EventType.STATUS, Status.QUEUED, {}, datetime.now(UTC))


def received(stream: MemoryObjectReceiveStream[Event]) -> list[int]:
    """The seqs waiting in ``stream``; -1 marks its end."""
    seqs: list[int] = []
    while True:
        try:
            seqs.append(stream.receive_nowait().seq)
        except anyio.WouldBlock:
            return seqs
        except anyio.EndOfStream:
            return [*seqs, -1]


@pytest.mark.anyio
async def test_every_subscriber_gets_every_event_in_order(streams: Streams) -> None:
    fanout = streams.fanout(10)
    subscribers = [streams.add(fanout) for _ in range(3)]
    for seq in range(1, 6):
        fanout.publish(event(seq))
    assert [received(s) for s in subscribers] == [[1, 2, 3, 4, 5]] * 3
    assert len(fanout) == 3


@pytest.mark.anyio
async def test_a_full_subscriber_is_dropped_without_holding_back_the_others(
    streams: Streams,
) -> None:
    fanout = streams.fanout(2)
    slow, fast = streams.add(fanout), streams.add(fanout)
    fanout.publish(event(1))
    fanout.publish(event(2))
    assert received(fast) == [1, 2]
    fanout.publish(event(3))  # slow's buffer is full: it is cut loose
    assert len(fanout) == 1
    assert received(slow) == [1, 2, -1]  # what it had, then its stream ends
    fanout.publish(event(4))
    assert received(fast) == [3, 4]


@pytest.mark.anyio
async def test_publish_never_waits_for_a_slow_reader(streams: Streams) -> None:
    fanout = streams.fanout(1)
    slow = streams.add(fanout)
    for seq in range(1, 100):  # publish is synchronous: nothing here can wait
        fanout.publish(event(seq))
    assert received(slow) == [1, -1]
    assert len(fanout) == 0


@pytest.mark.anyio
async def test_a_closed_receiver_is_removed(streams: Streams) -> None:
    fanout = streams.fanout(4)
    gone, stays = streams.add(fanout), streams.add(fanout)
    gone.close()
    fanout.publish(event(1))
    assert len(fanout) == 1
    assert received(stays) == [1]


@pytest.mark.anyio
async def test_close_ends_every_stream_after_what_was_sent(streams: Streams) -> None:
    fanout = streams.fanout(4)
    subscribers = [streams.add(fanout), streams.add(fanout)]
    fanout.publish(event(1))
    fanout.close()
    assert len(fanout) == 0
    assert [received(s) for s in subscribers] == [[1, -1], [1, -1]]
    fanout.publish(event(2))  # nobody left: nothing happens


@pytest.mark.anyio
async def test_a_waiting_reader_wakes_for_each_event(streams: Streams) -> None:
    fanout = streams.fanout(4)
    stream = streams.add(fanout)
    arrived = {seq: anyio.Event() for seq in (1, 2, 3)}
    seen: list[int] = []

    async def read(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        async with stream:
            async for received_event in stream:
                seen.append(received_event.seq)
                arrived[received_event.seq].set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(read)
            for seq in (1, 2, 3):
                fanout.publish(event(seq))
                await arrived[seq].wait()
                assert len(fanout) == 1
            fanout.close()
    assert seen == [1, 2, 3]
