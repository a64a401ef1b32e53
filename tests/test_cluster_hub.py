"""The hub over a real journal: a notification that arrives while a read is under way
is read too (before, the read's end forgot it and a stream missed the terminal event)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from sqlalchemy import URL

from cluster.hub import EventHub
from store.cluster import ClusterStore
from store.database import Database, open_database
from store.journal import PgJournal
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from supervisor.door import OfflineCancel, TaskDoor
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import Status
from supervisor.messages import CancelOutcome, Subscription
from supervisor.ownership import Ownership
from supervisor.transitions import requeued
from web.feed import open_feed

pytestmark = pytest.mark.anyio


class _HeldAfterReading(ClusterStore):
    """The real store, whose first read of events waits (after its query) for a gate."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.read = anyio.Event()
        self.gate = anyio.Event()

    async def events_after(self, afters: dict[uuid.UUID, int]) -> list[Event]:
        events = await super().events_after(afters)
        if not self.read.is_set():
            self.read.set()
            await self.gate.wait()
        return events


@pytest.fixture
async def database(database_url: URL) -> AsyncIterator[Database]:
    async with open_database(database_url, pool_size=4) as opened:
        yield opened


async def test_a_notification_during_a_read_is_not_lost(database: Database) -> None:
    data = b"RIFF" + uuid.uuid4().bytes
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    task_id, _ = await TaskStore(database).create(NewTask(uuid.uuid4(), "t", "en-US"), upload)
    journal = PgJournal(database)
    store = _HeldAfterReading(database)
    hub = EventHub(store, buffer=16)
    live = hub.subscribe(task_id, after=1)  # the client has seq 1 (its replay)
    async with anyio.create_task_group() as group:
        group.start_soon(hub.run)
        with anyio.fail_after(10):
            queued = await journal.append(
                task_id, 1, Change(EventType.STATUS, Status.QUEUED, {"position": 0})
            )
            hub.notified(task_id, queued.seq)
            await store.read.wait()  # the read of seq 2 has run its query
            failed = await journal.append(task_id, 2, Change(EventType.STATUS, Status.FAILED))
            hub.notified(task_id, failed.seq)  # arrives while that read is under way
            store.gate.set()
            received = [await live.events.receive(), await live.events.receive()]
        assert all(isinstance(e, Event) for e in received)
        assert [(e.seq, e.status) for e in received if isinstance(e, Event)] == [
            (2, Status.QUEUED),
            (3, Status.FAILED),
        ]
        group.cancel_scope.cancel()
    await live.events.aclose()
    hub.close()  # its fan-outs' send ends too


async def test_a_retried_task_followed_through_the_hub_ends_at_its_current_end(
    database: Database,
) -> None:
    """A stream of a retried task, followed from another instance: the hub catches up
    from the client's position, and an earlier attempt's end, which the client has
    seen, does not end the stream (before, catching up replayed from the first event
    and the old ``failed`` ended it: in polling mode, on every tick)."""
    data = b"RIFF" + uuid.uuid4().bytes
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    store = TaskStore(database)
    task_id, _ = await store.create(NewTask(uuid.uuid4(), "t", "en-US"), upload)
    journal = PgJournal(database)
    await journal.append(task_id, 1, Change(EventType.STATUS, Status.FAILED, {"reason": "x"}))
    await journal.append(task_id, 2, requeued(2))  # retried: seq 3, created again
    hub = EventHub(ClusterStore(database), buffer=16)
    door = TaskDoor(_NoSupervisor(journal), elsewhere=_Elsewhere(hub))  # type: ignore[arg-type]
    feed = await open_feed(store, door, task_id, 3, status=Status.CREATED)
    seen: list[int] = []
    ended = anyio.Event()

    async def read() -> None:
        async for event in feed.events():
            assert isinstance(event, Event)  # the cluster carries journalled events only
            seen.append(event.seq)
        ended.set()

    async with anyio.create_task_group() as group:
        group.start_soon(hub.run)
        group.start_soon(read)
        with anyio.fail_after(10):
            await hub.catch_up()  # a tick (polling), or a reconnection
            await journal.append(task_id, 3, Change(EventType.STATUS, Status.QUEUED, {}))
            await hub.catch_up()
            done = await journal.append(task_id, 4, Change(EventType.STATUS, Status.COMPLETED))
            hub.notified(task_id, done.seq)
            await ended.wait()  # at the current end, and only there
        group.cancel_scope.cancel()
    assert seen == [4, 5]
    await feed.aclose()
    hub.close()


class _NoSupervisor:
    """What the door needs of a supervisor for a task no actor here runs."""

    def __init__(self, journal: PgJournal) -> None:
        self.journal = journal
        self.ownership = Ownership()


class _Elsewhere:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    def subscribe(self, task_id: uuid.UUID, after: int = 0) -> Subscription:
        return self._hub.subscribe(task_id, after)

    async def cancel(
        self, task_id: uuid.UUID, reason: str, offline: OfflineCancel
    ) -> CancelOutcome:
        raise AssertionError("not used")


async def test_a_stream_opened_after_the_hub_closed_ends_at_once(database: Database) -> None:
    """The service still answers while it stops: a stream (or a cancel's wait) that
    starts after the hub closed must not wait for events nobody will read."""
    hub = EventHub(ClusterStore(database), buffer=16)
    hub.close()
    live = hub.subscribe(uuid.uuid4())
    with anyio.fail_after(5):
        async with live.events as events:
            assert [event async for event in events] == []
    assert len(hub) == 0
