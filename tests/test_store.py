"""The PostgreSQL store, on the machine's server and on the embedded one."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import URL, bindparam, func, select

from speech.base import NormalisedAudio
from store.database import Database, connect_arguments, open_database
from store.journal import PgJournal
from store.models import TERMINAL_SQL, AudioRow, EventRow
from store.records import NewTask, NewUpload
from store.sql import Query, compile_query
from store.tasks import ListQuery, TaskStore
from supervisor.events import Change, EventType
from supervisor.lifecycle import TERMINAL, Status
from supervisor.ports import JournalUnavailable, StaleWrite
from supervisor.transitions import cancelled

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[Database]:
    async with open_database(database_url, pool_size=2) as database:
        yield database


async def events_of(database: Database, task_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(EventRow).where(EventRow.task_id == bindparam("id"))
    return int(await database.value(compile_query(query, idempotent=True), id=task_id))


def upload(data: bytes = b"RIFF....WAVE") -> NewUpload:
    return NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())


async def new_task(store: TaskStore, user: uuid.UUID, **extra: object) -> uuid.UUID:
    task_id, created = await store.create(NewTask(user, "title", "en-US", **extra), upload())  # type: ignore[arg-type]
    assert created
    return task_id


async def test_create_writes_task_event_and_audio_at_once(
    engine: Database, user: uuid.UUID
) -> None:
    store = TaskStore(engine)
    task_id = await new_task(store, user, reference_text="hello")
    record = await store.get(user, task_id)
    assert record is not None
    assert (record.status, record.last_seq, record.attempt) == ("created", 1, 1)
    events = await store.events_after(task_id, 0)
    assert [(e.seq, e.status) for e in events] == [(1, Status.CREATED)]
    audio = await store.audio(user, task_id)
    assert audio is not None
    assert audio.data == b"RIFF....WAVE"
    assert await store.get(uuid.uuid4(), task_id) is None


async def test_idempotency_key_is_unique_per_user(engine: Database, user: uuid.UUID) -> None:
    store = TaskStore(engine)
    task = NewTask(user, "t", "en-US", idempotency_key="k")
    first, created = await store.create(task, upload())
    again, created_again = await store.create(task, upload())
    assert created
    assert not created_again
    assert first == again
    assert await events_of(engine, first) == 1


async def test_journal_appends_in_seq_order_and_refuses_stale_writes(
    engine: Database, user: uuid.UUID
) -> None:
    store, journal = TaskStore(engine), PgJournal(engine)
    task_id = await new_task(store, user)
    queued = await journal.append(
        task_id, 1, Change(EventType.STATUS, Status.QUEUED, {"position": 0})
    )
    assert (queued.seq, queued.status, queued.payload) == (2, Status.QUEUED, {"position": 0})
    with pytest.raises(StaleWrite):
        await journal.append(task_id, 1, Change(EventType.STATUS, Status.STARTED))
    started = await journal.append(task_id, 2, Change(EventType.STATUS, Status.STARTED))
    audio = NormalisedAudio(b"\x01\x00" * 160, 0.01)
    await journal.append(task_id, 3, Change(EventType.STATUS, Status.PREPROCESSING), audio)
    assert await journal.load_normalised(task_id) == audio
    snapshot = await journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == (Status.PREPROCESSING, 4)
    assert [e.seq for e in await store.events_after(task_id, 0)] == [1, 2, 3, 4]
    record = await store.get(user, task_id)
    assert record is not None
    assert record.started_at is not None
    assert record.duration == 0.01
    assert started.created_at <= record.updated_at


async def test_runnable_lists_live_tasks_oldest_first(engine: Database, user: uuid.UUID) -> None:
    store, journal = TaskStore(engine), PgJournal(engine)
    first = await new_task(store, user)
    ended = await new_task(store, user)
    last = await new_task(store, user)
    await journal.append(ended, 1, cancelled("test"))
    runnable = [snapshot.id for snapshot in await journal.runnable()]
    assert ended not in runnable
    assert runnable.index(first) < runnable.index(last)
    assert [s.status for s in await journal.runnable() if s.id == first] == [Status.CREATED]


async def test_keyset_pages_and_delete_cascades(engine: Database, user: uuid.UUID) -> None:
    store = TaskStore(engine)
    ids = [await new_task(store, user) for _ in range(5)]
    page = await store.page(ListQuery(user, limit=3))
    assert [t.id for t in page.items] == ids[:1:-1]
    rest = await store.page(ListQuery(user, limit=3, cursor=page.next_cursor))
    assert [t.id for t in rest.items] == ids[1::-1]
    assert rest.next_cursor is None
    assert await store.delete(user, ids[0])
    for table in (EventRow, AudioRow):
        query = select(func.count()).select_from(table).where(table.task_id == bindparam("id"))
        assert await engine.value(compile_query(query, idempotent=True), id=ids[0]) == 0
    assert not await store.delete(user, ids[0])


async def test_unreachable_database_is_journal_unavailable() -> None:
    url = URL.create("postgresql+asyncpg", username="x", host="127.0.0.1", port=1)
    async with open_database(url) as database:
        with pytest.raises(JournalUnavailable):
            await PgJournal(database).load(uuid.uuid4())
        assert not await database.ping()


def test_the_partial_index_names_exactly_the_terminal_statuses() -> None:
    named = {part.strip(" '") for part in TERMINAL_SQL.strip("()").split(",")}
    assert named == {status.value for status in TERMINAL}


async def test_audio_is_stored_without_compression(engine: Database) -> None:
    query = Query(
        "SELECT attname, attstorage::text AS attstorage FROM pg_attribute"
        " WHERE attrelid = 'task_audio'::regclass AND attname IN ('data', 'pcm')",
        (),
        {},
        idempotent=True,
    )
    rows = await engine.rows(query)
    assert {row.attname: row.attstorage for row in rows} == {"data": "e", "pcm": "e"}


def test_no_tls_is_negotiated_with_a_loopback_server_and_elsewhere_the_default_stands() -> None:
    for host in ("127.0.0.1", "localhost", "[::1]"):
        assert connect_arguments(f"postgresql+asyncpg://u@{host}:5432/d")["ssl"] is False
    assert "ssl" not in connect_arguments("postgresql+asyncpg://u@db.example:5432/d")
    assert "ssl" not in connect_arguments("postgresql+asyncpg://u@/d?host=/run/postgresql")
