"""The webhook outbox in PostgreSQL: written by the transition's statement, claimed once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import URL

from store.database import Database, open_database
from store.deliveries import DeliveryStore, Outcome
from store.journal import PgJournal, WebhookPolicy
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from supervisor.events import Change, EventType
from supervisor.lifecycle import Status
from supervisor.ports import StaleWrite
from supervisor.transitions import cancelled

pytestmark = pytest.mark.anyio

OPS = "https://ops.example/hooks"


@pytest.fixture
async def database(service_database_url: URL) -> AsyncIterator[Database]:
    async with open_database(service_database_url, pool_size=3) as opened:
        yield opened


async def _task(database: Database, user: uuid.UUID, webhook_url: str | None) -> uuid.UUID:
    data = uuid.uuid4().bytes
    upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
    record, _ = await TaskStore(database).admit(
        NewTask(user, "t", "en-US", webhook_url=webhook_url), upload
    )
    return record.id


async def test_only_the_terminal_transition_records_deliveries_in_its_own_statement(
    database: Database, user: uuid.UUID
) -> None:
    told: list[None] = []
    journal = PgJournal(database, WebhookPolicy(OPS, recorded=lambda: told.append(None)))
    deliveries = DeliveryStore(database)
    task_id = await _task(database, user, "https://a.example/h")
    await journal.append(task_id, 1, Change(EventType.STATUS, Status.QUEUED))
    assert await deliveries.of_task(task_id) == []
    with pytest.raises(StaleWrite):
        await journal.append(task_id, 1, cancelled("stale"))  # written by nobody
    assert await deliveries.of_task(task_id) == []
    event = await journal.append(task_id, 2, cancelled("by the test"))
    assert event.status is Status.CANCELLED
    recorded = await deliveries.of_task(task_id)
    assert sorted((d.url, d.service_wide) for d in recorded) == [
        ("https://a.example/h", False),
        (OPS, True),
    ]
    assert {(d.event_type, d.task_status, d.seq, d.state) for d in recorded} == {
        ("task.cancelled", "cancelled", 3, "pending")
    }
    assert len(told) == 1


async def test_a_task_url_equal_to_the_service_url_is_sent_once(
    database: Database, user: uuid.UUID
) -> None:
    journal = PgJournal(database, WebhookPolicy(OPS))
    task_id = await _task(database, user, OPS)
    await journal.append(task_id, 1, cancelled("by the test"))
    [delivery] = await DeliveryStore(database).of_task(task_id)
    assert delivery.service_wide


async def test_the_delivery_loop_is_not_woken_when_no_url_applies(
    database: Database, user: uuid.UUID
) -> None:
    told: list[None] = []
    journal = PgJournal(database, WebhookPolicy(recorded=lambda: told.append(None)))
    task_id = await _task(database, user, None)
    event = await journal.append(task_id, 1, cancelled("by the test"))
    assert event.status is Status.CANCELLED
    assert await DeliveryStore(database).of_task(task_id) == []
    assert told == []


async def test_a_claimed_delivery_is_not_claimed_again_while_leased(
    database: Database, user: uuid.UUID
) -> None:
    journal = PgJournal(database, WebhookPolicy())
    deliveries = DeliveryStore(database)
    task_id = await _task(database, user, "https://b.example/h")
    await journal.append(task_id, 1, cancelled("by the test"))
    claimed = [d for d in await deliveries.claim(100, lease=600) if d.task_id == task_id]
    assert len(claimed) == 1
    again = await deliveries.claim(100, lease=600)
    assert all(d.task_id != task_id for d in again)
    # A redeliver while the attempt is in flight leaves it to that attempt (no second send).
    assert await deliveries.redeliver(task_id, claimed[0].id)
    assert all(d.task_id != task_id for d in await deliveries.claim(100, lease=600))
    failed = Outcome("pending", datetime.now(UTC), 0.1, status_code=500, delay=3600)
    await deliveries.record(claimed[0].id, failed)
    assert await deliveries.redeliver(task_id, claimed[0].id)  # once it landed: due now again
    assert [d.id for d in await deliveries.claim(100, lease=600) if d.task_id == task_id] == [
        claimed[0].id
    ]
