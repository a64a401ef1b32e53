"""Retention against a real PostgreSQL: old audio and ended tasks go, live ones stay."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from service.retention import INTERVAL, Retention
from store.database import Database, connect_arguments, open_database
from store.records import NewTask, NewUpload
from store.tasks import PURGE_LOCK, TaskStore
from tests.service_helpers import auth, create, read_stream, running_service
from tests.webhook_helpers import silent_wav

pytestmark = pytest.mark.anyio


@pytest.fixture
async def database(service_database_url: URL) -> AsyncIterator[Database]:
    async with open_database(service_database_url, pool_size=2) as opened:
        yield opened


@pytest.fixture
async def sql(service_database_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to set times in the past as if days had gone by."""
    connection = await asyncpg.connect(**connect_arguments(service_database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def _task(
    store: TaskStore,
    sql: asyncpg.Connection,
    user: uuid.UUID,
    status: str,
    ended_days_ago: float | None,
) -> uuid.UUID:
    data = b"RIFF....WAVE" + uuid.uuid4().bytes
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    record, _ = await store.admit(NewTask(user, "t", "en-US"), upload)
    ended = None if ended_days_ago is None else timedelta(days=ended_days_ago)
    await sql.execute(
        "UPDATE tasks SET status = $2, created_at = now() - interval '100 days',"
        " completed_at = now() - $3::interval WHERE id = $1",
        record.id,
        status,
        ended,
    )
    return record.id


async def test_retention_removes_old_audio_then_old_tasks_and_never_live_ones(
    database: Database, sql: asyncpg.Connection, user: uuid.UUID
) -> None:
    store = TaskStore(database)
    audio_old = await _task(store, sql, user, "completed", 40)
    task_old = await _task(store, sql, user, "failed", 70)
    cancelled_old = await _task(store, sql, user, "cancelled", 61)
    recent = await _task(store, sql, user, "completed", 1)
    live = await _task(store, sql, user, "transcribing", None)
    # A live task whose end time is old (as a retried one's might be): its status rules.
    live_dated = await _task(store, sql, user, "started", 90)
    removed: list[tuple[str, int]] = []
    slept = anyio.Event()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        slept.set()
        await anyio.sleep_forever()

    retention = Retention(
        store,
        audio_days=30,
        task_days=60,
        batch=1,  # one row a statement: the purge goes batch after batch
        removed=lambda kind, count: removed.append((kind, count)),
        sleep=sleep,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(retention.run)
        with anyio.fail_after(30):
            await slept.wait()  # the purge at start is done
        group.cancel_scope.cancel()
    assert sleeps == [INTERVAL]
    assert await store.get(user, task_old) is None
    assert await store.get(user, cancelled_old) is None
    assert await store.events_after(task_old, 0) == []
    assert await store.audio_removed(audio_old)
    kept = await store.get(user, audio_old)
    assert kept is not None
    assert kept.status == "completed"
    for untouched in (recent, live, live_dated):
        assert await store.get(user, untouched) is not None
        assert not await store.audio_removed(untouched)
    assert sum(n for kind, n in removed if kind == "tasks") >= 2
    assert all(n == 1 for _, n in removed)


async def test_a_purge_removes_nothing_while_another_instance_purges(
    database: Database, sql: asyncpg.Connection, user: uuid.UUID
) -> None:
    store = TaskStore(database)
    old = await _task(store, sql, user, "completed", 400)
    retention = Retention(store, audio_days=None, task_days=300)
    await sql.execute("SELECT pg_advisory_lock($1)", PURGE_LOCK)  # the other instance
    try:
        assert await retention.purge() == {"audio": 0, "tasks": 0}
        assert await store.get(user, old) is not None
    finally:
        await sql.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
    counts = await retention.purge()
    assert counts["tasks"] >= 1
    assert await store.get(user, old) is None


async def test_a_task_whose_audio_was_removed_answers_404_for_audio_and_409_for_retry(
    service_database_url: URL, tmp_path: Path, sql: asyncpg.Connection, user: uuid.UUID
) -> None:
    operator = uuid.uuid4()
    async with running_service(service_database_url, tmp_path, admin_users=[operator]) as running:
        created = await create(running.client, user, silent_wav())
        task_id = created.json()["id"]
        events = await read_stream(running.client, f"/tasks/{task_id}/events", auth(user))
        assert events[-1].data["status"] == "failed"
        await sql.execute(
            "UPDATE tasks SET completed_at = now() - interval '10 days' WHERE id = $1",
            uuid.UUID(task_id),
        )
        retention = Retention(running.service.services.store, audio_days=5, task_days=None)
        assert (await retention.purge())["audio"] >= 1
        audio = await running.client.get(f"/tasks/{task_id}/audio", headers=auth(user))
        retried = await running.client.post(f"/tasks/{task_id}/retry", headers=auth(user))
        # The operator's retry too (before: 202, then the task failed "the upload is empty").
        by_operator = await running.client.post(
            f"/admin/tasks/{task_id}/retry", headers=auth(operator)
        )
        bulk = await running.client.post("/admin/retry", headers=auth(operator), json={})
        detail = await running.client.get(f"/tasks/{task_id}", headers=auth(user))
    assert audio.status_code == 404
    assert "retention" in audio.json()["detail"]
    assert retried.status_code == 409
    assert "retention" in retried.json()["detail"]
    assert by_operator.status_code == 409
    assert "retention" in by_operator.json()["detail"]
    assert bulk.json() == {"matched": 1, "retried": []}
    assert detail.status_code == 200
    assert detail.json()["status"] == "failed"
    assert detail.json()["attempt"] == 1
