"""Ownership in the database: admission, claims, the fence on every write, retries.

Real PostgreSQL, no processes: two or three "instances" are rows of
``cluster_instances`` with a ``Claims`` each, over one pool.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from cluster.hub import EventHub
from cluster.remote import RemoteTasks
from store.cluster import CancelRequest, ClusterStore
from store.database import Database, connect_arguments, open_database
from store.journal import PgJournal
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from supervisor.claims import Claims
from supervisor.config import SupervisorConfig
from supervisor.events import Change, EventType
from supervisor.lifecycle import Status
from supervisor.messages import CancelOutcome
from supervisor.ports import Fenced, StaleWrite
from supervisor.supervisor import Supervisor
from supervisor.transitions import cancelled, requeued
from tests.conftest import fresh_database_beside, sql_rows

pytestmark = pytest.mark.anyio

#: The supervisor's pipeline, never used by a cancel written offline.
_NO_PIPELINE: Any = object()
QUEUED = Change(EventType.STATUS, Status.QUEUED, {"position": 0})


@pytest.fixture(scope="module")
def database_url(database_url: URL) -> URL:
    """A database of this module's own: its tests claim whatever is unowned, so tasks an
    earlier module left unowned must not be there."""
    return fresh_database_beside(database_url)


@pytest.fixture
async def database(database_url: URL) -> AsyncIterator[Database]:
    async with open_database(database_url, pool_size=4) as opened:
        yield opened


async def _member(url: URL, limit: int = 10) -> Claims:
    claims = Claims(uuid.uuid4(), limit)
    await sql_rows(
        url,
        "INSERT INTO cluster_instances (id, name, lock_key, lease_until)"
        " VALUES ($1, 'test', $2, now() + interval '1 minute')",
        claims.instance_id,
        secrets.randbits(62),
    )
    return claims


async def _presumed_dead(url: URL, claims: Claims) -> None:
    await sql_rows(url, "DELETE FROM cluster_instances WHERE id = $1", claims.instance_id)


async def _live(url: URL, task_id: uuid.UUID) -> tuple[uuid.UUID | None, int] | None:
    rows = await sql_rows(
        url, "SELECT owner, generation FROM live_tasks WHERE task_id = $1", task_id
    )
    return (rows[0]["owner"], rows[0]["generation"]) if rows else None


async def _admit(database: Database, claims: Claims) -> uuid.UUID:
    data = b"RIFF" + secrets.token_bytes(64)
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    task_id, created = await TaskStore(database, claims).create(
        NewTask(uuid.uuid4(), "title", "en-US"), upload
    )
    assert created
    return task_id


async def test_a_task_admitted_with_room_is_owned_by_its_instance(
    database: Database, database_url: URL
) -> None:
    a = await _member(database_url)
    task_id = await _admit(database, a)
    assert task_id in a
    assert await _live(database_url, task_id) == (a.instance_id, 0)


async def test_a_task_admitted_without_room_waits_unowned_and_is_claimed_by_another(
    database: Database, database_url: URL
) -> None:
    a, b = await _member(database_url, limit=1), await _member(database_url)
    first, second = await _admit(database, a), await _admit(database, a)
    assert first in a
    assert second not in a
    assert await _live(database_url, second) == (None, 0)
    store = ClusterStore(database)
    assert await store.unowned_position(second) == 1
    claimed = await store.claim(b.instance_id, 5)
    assert [c.snapshot.id for c in claimed] == [second]
    assert claimed[0].snapshot.status is Status.CREATED
    assert claimed[0].generation > 0
    assert await _live(database_url, second) == (b.instance_id, claimed[0].generation)
    assert await store.claim(b.instance_id, 5) == []  # nothing left unowned


async def test_a_write_of_an_owner_that_lost_the_task_is_refused_and_changes_nothing(
    database: Database, database_url: URL
) -> None:
    a, b = await _member(database_url), await _member(database_url)
    task_id = await _admit(database, a)
    old = PgJournal(database, claims=a)
    await _presumed_dead(database_url, a)  # its tasks are unowned now
    claimed = await ClusterStore(database).claim(b.instance_id, 5)
    b.hold(task_id, claimed[0].generation)
    # A, paused meanwhile, wakes at the seq it knew: the seq guard alone would let it in.
    with pytest.raises(Fenced):
        await old.append(task_id, 1, QUEUED)
    assert task_id in a  # a write changes no claim: the supervisor decides what to do
    snapshot = await old.load(task_id)
    assert snapshot is not None
    assert snapshot.seq == 1
    new = PgJournal(database, claims=b)
    event = await new.append(task_id, 1, QUEUED)
    assert event.seq == 2


async def test_a_write_refused_by_its_seq_says_so_and_changes_no_claim(
    database: Database, database_url: URL
) -> None:
    """A write whose answer was lost has landed: the next try of it with the same seq
    is found to be that write (answered as it landed); another write at that seq is
    refused by the seq guard, not the fence; the instance keeps its task."""
    a = await _member(database_url)
    task_id = await _admit(database, a)
    journal = PgJournal(database, claims=a)
    written = await journal.append(task_id, 1, QUEUED)  # landed; say its answer was lost
    # The same write again: it is the one that landed, and it answers as it would have.
    assert await journal.append(task_id, 1, QUEUED) == written
    # Another write at that seq: the seq moved on under it.
    with pytest.raises(StaleWrite) as refused:
        await journal.append(task_id, 1, cancelled("stale"))
    assert not isinstance(refused.value, Fenced)
    assert task_id in a
    assert await _live(database_url, task_id) == (a.instance_id, 0)


async def test_a_write_the_journal_has_moved_past_is_stale_even_when_it_matches(
    database: Database, database_url: URL
) -> None:
    """Only the task's latest event can be a write whose answer was lost: an actor on an
    older snapshot writing an event identical to a stored earlier one (its "queued") is
    refused by the seq guard, so it reloads instead of running the task's stages again."""
    a = await _member(database_url)
    task_id = await _admit(database, a)
    journal = PgJournal(database, claims=a)
    await journal.append(task_id, 1, QUEUED)
    await journal.append(task_id, 2, cancelled("ended"))
    with pytest.raises(StaleWrite):
        await journal.append(task_id, 1, QUEUED)


async def test_a_write_fenced_by_an_unowned_row_only_lands_while_nobody_owns_the_task(
    database: Database, database_url: URL
) -> None:
    a, c = await _member(database_url), await _member(database_url)
    task_id = await _admit(database, a)
    # C holds nothing of it: its write (a cancel of a task no actor here runs) is fenced
    # by "nobody owns it".
    bystander = PgJournal(database, claims=c)
    with pytest.raises(Fenced):  # A owns it: C's writer asks A instead
        await bystander.append(task_id, 1, cancelled("by C"))
    await _presumed_dead(database_url, a)
    event = await bystander.append(task_id, 1, cancelled("by C"))
    assert event.status is Status.CANCELLED
    assert await _live(database_url, task_id) is None  # ended: out of the live tasks


async def test_the_terminal_write_ends_the_claim_and_a_retry_makes_the_task_live_again(
    database: Database, database_url: URL
) -> None:
    a, b = await _member(database_url), await _member(database_url, limit=1)
    task_id = await _admit(database, a)
    journal = PgJournal(database, claims=a)
    await journal.append(task_id, 1, cancelled("stop"))
    assert await _live(database_url, task_id) is None
    a.drop(task_id)  # the end of its supervision lets the claim go
    # Retried on B (with room): B runs the new attempt.
    retried = await PgJournal(database, claims=b).append(task_id, 2, requeued(2))
    assert retried.status is Status.CREATED
    assert task_id in b
    assert await _live(database_url, task_id) == (b.instance_id, 0)


async def test_a_retry_on_an_instance_without_room_leaves_the_task_to_a_claim(
    database: Database, database_url: URL
) -> None:
    a, full = await _member(database_url), await _member(database_url, limit=1)
    busy, task_id = await _admit(database, full), await _admit(database, a)
    assert busy in full
    await PgJournal(database, claims=a).append(task_id, 1, cancelled("stop"))
    await PgJournal(database, claims=full).append(task_id, 2, requeued(2))
    assert task_id not in full
    assert await _live(database_url, task_id) == (None, 0)


async def test_an_instance_presumed_dead_cannot_claim(
    database: Database, database_url: URL
) -> None:
    a, b = await _member(database_url), await _member(database_url, limit=1)
    await _admit(database, b)
    await _admit(database, b)  # no room: unowned
    await _presumed_dead(database_url, a)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await ClusterStore(database).claim(a.instance_id, 5)


async def test_only_a_change_of_members_tells_the_others(database_url: URL) -> None:
    """A lease renewal that removes nobody must not make every watch look again."""
    heard: list[str] = []
    listening = await asyncpg.connect(**connect_arguments(database_url))
    try:
        await listening.add_listener("stm_members", lambda *args: heard.append(args[3]))
        await sql_rows(database_url, "DELETE FROM cluster_instances WHERE lease_until < now()")
        claims = await _member(database_url)  # one joins
        await _presumed_dead(database_url, claims)  # and leaves
        await sql_rows(database_url, "SELECT 1")  # a round trip: the notifications are in
        await listening.execute("SELECT 1")
    finally:
        await listening.close()
    assert len(heard) == 2


async def test_a_cancel_written_offline_of_a_task_another_instance_owns_gives_way(
    database: Database, database_url: URL
) -> None:
    """The write of a cancel no actor here carries out is fenced by "nobody owns it":
    refused because A owns the task, it answers at once (A is asked instead) rather
    than load and write again and again (before: a refusal for any reason was taken
    for a moved seq, and it looped with no pause for as long as A owned the task)."""
    a, c = await _member(database_url), await _member(database_url)
    task_id = await _admit(database, a)
    supervisor = Supervisor(
        PgJournal(database, claims=c), _NO_PIPELINE, SupervisorConfig(capacity=1), claims=c
    )
    with anyio.fail_after(5):
        assert await supervisor.cancel_offline(task_id, "by C") is CancelOutcome.ENDED
    snapshot = await PgJournal(database).load(task_id)
    assert snapshot is not None
    assert snapshot.status is Status.CREATED  # untouched: A runs it


async def test_an_instance_presumed_dead_still_admits_and_retries_leaving_the_task_unowned(
    database: Database, database_url: URL
) -> None:
    """Between being presumed dead and hearing of it, an instance's admissions and
    retries named it as the owner and met the foreign key: a 500 for every upload.
    Now the task waits unowned for a claim (its own, once it has joined again)."""
    a = await _member(database_url)
    ended = await _admit(database, a)
    await PgJournal(database, claims=a).append(ended, 1, cancelled("stop"))
    a.drop(ended)
    await _presumed_dead(database_url, a)
    admitted = await _admit(database, a)
    assert admitted not in a
    assert await _live(database_url, admitted) == (None, 0)
    retried = await PgJournal(database, claims=a).append(ended, 2, requeued(2))
    assert retried.status is Status.CREATED
    assert ended not in a
    assert await _live(database_url, ended) == (None, 0)


async def test_a_delete_meeting_a_fenced_write_of_the_same_task_waits_instead_of_deadlocking(
    database: Database, database_url: URL, user: uuid.UUID
) -> None:
    """A fenced write locks the task's live row, then its task row; a delete locked the
    task row, then (the cascade) the live row: the two met in a deadlock and one was
    aborted (a 500 for the delete, or a crashed actor). The write is played here step
    by step in a transaction of its own, in the statement's order."""
    a = await _member(database_url)
    data = b"RIFF" + secrets.token_bytes(64)
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    task_id, _ = await TaskStore(database, a).create(NewTask(user, "t", "en-US"), upload)
    writer = await asyncpg.connect(**connect_arguments(database_url))
    try:
        write = writer.transaction()
        await write.start()
        # The fence: the live row, share-locked first.
        await writer.execute("SELECT 1 FROM live_tasks WHERE task_id = $1 FOR SHARE", task_id)
        deleted: list[bool] = []

        async def delete() -> None:
            deleted.append(await TaskStore(database).delete(user, task_id))

        async with anyio.create_task_group() as group:
            group.start_soon(delete)
            with anyio.fail_after(10):
                await _waits_for_a_lock(database_url)  # the delete is under way, and waits
            # The write's second step: the task row (before: the delete held it, and
            # waited for the live row, which this transaction holds).
            await writer.execute("UPDATE tasks SET last_seq = 2 WHERE id = $1", task_id)
            await write.commit()
        assert deleted == [True]
    finally:
        await writer.close()


async def _waits_for_a_lock(url: URL) -> None:
    """Until a DELETE of the test's database waits for a lock (another session's state:
    looked at, for want of any event it could send)."""
    while True:
        rows = await sql_rows(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM tasks%'",
        )
        if rows:
            return
        await anyio.sleep(0.02)


async def test_a_cancel_through_another_instance_of_a_retried_task_waits_for_its_true_end(
    database: Database, database_url: URL
) -> None:
    """B cancels a task that A runs, on its second attempt: the first attempt's
    ``failed`` is in its history, and B's hub followed nothing of it yet. The answer is
    the end the cancel brings about (before: the hub read the task from its first
    event, and the old ``failed`` answered "already ended" while A went on to cancel)."""
    a, b = await _member(database_url), await _member(database_url)
    task_id = await _admit(database, a)
    owner = PgJournal(database, claims=a)
    await owner.append(task_id, 1, QUEUED)
    await owner.append(task_id, 2, Change(EventType.STATUS, Status.FAILED, {}))
    a.drop(task_id)
    await owner.append(task_id, 3, requeued(2))  # retried on A: A owns it again
    assert task_id in a
    queued = await owner.append(task_id, 4, QUEUED)
    requested = anyio.Event()

    class Recorded(ClusterStore):
        """The real store, telling the test when a cancel request is recorded (as the
        owner would be told by a notification)."""

        async def request_cancel(self, task_id: uuid.UUID, reason: str) -> CancelRequest:
            request = await super().request_cancel(task_id, reason)
            requested.set()
            return request

    store = Recorded(database)
    hub = EventHub(store, buffer=16)
    remote = RemoteTasks(hub, store, b, PgJournal(database, claims=b), patience=10)

    async def offline(_task: uuid.UUID, _reason: str) -> CancelOutcome:
        raise AssertionError("A owns the task: nothing is written offline")

    async def carried_out_by_the_owner() -> None:
        await requested.wait()
        assert (task_id, "by B") in await store.pending_cancels(a.instance_id)
        ended = await owner.append(task_id, queued.seq, cancelled("by B"))
        hub.notified(task_id, ended.seq)

    async with anyio.create_task_group() as group:
        group.start_soon(hub.run)
        group.start_soon(carried_out_by_the_owner)
        with anyio.fail_after(10):
            assert await remote.cancel(task_id, "by B", offline) is CancelOutcome.CANCELLED
        group.cancel_scope.cancel()
    hub.close()
