"""Idempotency keys in the store: a repeat that races a DELETE of the task holding its key."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import URL

from store import tasks
from store.database import Database, Row, open_database
from store.records import NewTask, NewUpload
from store.sql import Query
from store.tasks import KeyContended, KeyReused, TaskStore

pytestmark = pytest.mark.anyio

AUDIO = b"RIFF....WAVE"
UPLOAD = NewUpload(AUDIO, "a.wav", "audio/wav", hashlib.sha256(AUDIO).hexdigest())


@pytest.fixture
async def database(service_database_url: URL) -> AsyncIterator[Database]:
    async with open_database(service_database_url, pool_size=2) as database:
        yield database


def delete_after_conflict(database: Database, store: TaskStore, times: int) -> list[uuid.UUID]:
    """Make the next ``times`` inserts that meet a taken key find its task deleted just
    after (what a DELETE landing between the insert and the lookup does); real SQL,
    the interleaving injected. Returns the ids it deleted."""
    deleted: list[uuid.UUID] = []
    real_row = database.row

    async def row(query: Query, **params: Any) -> Row | None:
        found = await real_row(query, **params)
        if query is tasks._ADMIT and found is None and len(deleted) < times:
            holder = await real_row(
                tasks._BY_KEY, user_id=params["user_id"], idempotency_key=params["idempotency_key"]
            )
            assert holder is not None
            assert await store.delete(params["user_id"], holder.id)
            deleted.append(holder.id)
        return found

    database.row = row  # type: ignore[method-assign]
    return deleted


async def test_a_repeat_whose_task_is_deleted_meanwhile_makes_a_new_task(
    database: Database, user: uuid.UUID
) -> None:
    store = TaskStore(database)
    task = NewTask(user, "title", "en-US", idempotency_key="k")
    first, created = await store.admit(task, UPLOAD)
    assert created
    deleted = delete_after_conflict(database, store, times=1)
    again, created = await store.admit(task, UPLOAD)
    assert deleted == [first.id]
    assert created
    assert again.id != first.id
    assert await store.get(user, first.id) is None
    assert (await store.admit(task, UPLOAD))[0].id == again.id  # the key is the new task's


async def test_a_repeat_that_keeps_losing_to_deletes_is_refused_not_a_crash(
    database: Database, user: uuid.UUID
) -> None:
    store = TaskStore(database)
    task = NewTask(user, "title", "en-US", idempotency_key="k")
    await store.admit(task, UPLOAD)
    real_row = database.row
    deleted = delete_after_conflict(database, store, times=1_000)
    racing = database.row

    async def recreate_then_race(query: Query, **params: Any) -> Row | None:
        # Before each retry's insert another repeat takes the key, and its task is
        # deleted in turn: every lookup finds the key free, every insert meets it taken.
        if query is tasks._ADMIT and deleted:
            await real_row(query, **{**params, "id": uuid.uuid4()})
        return await racing(query, **params)

    database.row = recreate_then_race  # type: ignore[method-assign]
    with pytest.raises(KeyContended):
        await store.admit(task, UPLOAD)


async def test_a_repeat_with_another_upload_is_key_reused(
    database: Database, user: uuid.UUID
) -> None:
    store = TaskStore(database)
    task = NewTask(user, "title", "en-US", idempotency_key="k")
    await store.admit(task, UPLOAD)
    other = NewUpload(AUDIO + b"!", "a.wav", "audio/wav", hashlib.sha256(AUDIO + b"!").hexdigest())
    with pytest.raises(KeyReused):
        await store.admit(task, other)
