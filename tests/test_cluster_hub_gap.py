"""The hub over a real journal: a notification lost with the LISTEN connection (a
database restart) leaves no gap in a stream followed through the hub."""

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
from supervisor.events import Broadcast, Change, Event, EventType
from supervisor.lifecycle import Status

pytestmark = pytest.mark.anyio


def journalled(item: Broadcast) -> Event:
    """The hub carries journalled events only."""
    assert isinstance(item, Event)
    return item


@pytest.fixture
async def database(database_url: URL) -> AsyncIterator[Database]:
    async with open_database(database_url, pool_size=4) as opened:
        yield opened


async def test_an_event_whose_notification_was_lost_is_read_with_the_next(
    database: Database,
) -> None:
    """A catch-up publishes seq 1 and 2; seq 3 is written while the listener is away
    (its notification is lost, and the catch-up of the reconnection failed: the pool
    was not back yet); seq 4 is notified. The hub reads after what it published, so
    the stream gets 3, then 4 (before, it read after the first seq notified less one,
    and 3 never came)."""
    data = b"RIFF" + uuid.uuid4().bytes
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    task_id, _ = await TaskStore(database).create(NewTask(uuid.uuid4(), "t", "en-US"), upload)
    journal = PgJournal(database)
    hub = EventHub(ClusterStore(database), buffer=16)
    live = hub.subscribe(task_id)
    async with anyio.create_task_group() as group:
        group.start_soon(hub.run)
        with anyio.fail_after(10):
            await journal.append(task_id, 1, Change(EventType.STATUS, Status.QUEUED, {}))
            await hub.catch_up()
            caught_up = [journalled(await live.events.receive()) for _ in range(2)]
            await journal.append(task_id, 2, Change(EventType.STATUS, Status.STARTED))
            ended = await journal.append(task_id, 3, Change(EventType.STATUS, Status.FAILED))
            hub.notified(task_id, ended.seq)
            first = journalled(await live.events.receive())
            assert (first.seq, first.status) == (3, Status.STARTED)  # not 4: no gap
            second = journalled(await live.events.receive())
        group.cancel_scope.cancel()
    assert [e.seq for e in caught_up] == [1, 2]
    assert (second.seq, second.status) == (4, Status.FAILED)
    await live.events.aclose()
    hub.close()
