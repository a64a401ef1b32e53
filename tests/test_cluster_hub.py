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
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import Status

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
    live = hub.subscribe(task_id)
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
        assert [(e.seq, e.status) for e in received] == [(2, Status.QUEUED), (3, Status.FAILED)]
        group.cancel_scope.cancel()
    await live.events.aclose()
    hub.close()  # its fan-outs' send ends too
