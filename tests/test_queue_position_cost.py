"""What a place in the cluster's queue costs (``GET /tasks/{id}`` of a task nobody owns
yet): the index of the unowned tasks, and of those only the ones ahead."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import URL

from store.cluster import _UNOWNED_POSITION, ClusterStore
from store.database import Database, connect_arguments, open_database

pytestmark = pytest.mark.anyio

WAITING = 5_000


@pytest.fixture
async def connection(service_database_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """Many ended tasks, a few hundred running (owned), a backlog waiting (unowned)."""
    opened = await asyncpg.connect(**connect_arguments(service_database_url))
    owner = uuid.uuid4()
    await opened.execute(
        "INSERT INTO cluster_instances (id, name, lock_key, lease_until)"
        " VALUES ($1, 'busy', 7, now() + interval '1 hour')",
        owner,
    )
    await opened.execute(
        f"""
        INSERT INTO tasks (id, user_id, title, language, status, last_seq, created_at)
        SELECT gen_random_uuid(), gen_random_uuid(), 'task', 'en-US',
               CASE WHEN g <= {WAITING} + 300 THEN 'created' ELSE 'completed' END, 1,
               now() - g * interval '1 second'
        FROM generate_series(1, 30000) AS g;
        INSERT INTO live_tasks (task_id, queued_at)
        SELECT id, created_at FROM tasks WHERE status = 'created';
        """
    )
    await opened.execute(
        "UPDATE live_tasks SET owner = $1 WHERE task_id IN"
        " (SELECT task_id FROM live_tasks ORDER BY queued_at LIMIT 300)",
        owner,
    )
    for table in ("tasks", "live_tasks"):
        await opened.execute(f"VACUUM ANALYZE {table}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def database(service_database_url: URL) -> AsyncIterator[Database]:
    async with open_database(service_database_url, pool_size=1) as opened:
        yield opened


async def _plan(connection: asyncpg.Connection, task_id: uuid.UUID) -> dict[str, Any]:
    sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _UNOWNED_POSITION.sql
    plan: dict[str, Any] = json.loads(await connection.fetchval(sql, task_id))[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def test_a_place_in_the_queue_reads_only_the_unowned_tasks_ahead(
    connection: asyncpg.Connection, database: Database
) -> None:
    order = "SELECT task_id FROM live_tasks WHERE owner IS NULL ORDER BY queued_at"
    first = await connection.fetchval(order + " LIMIT 1")
    last = await connection.fetchval(order + " DESC LIMIT 1")
    store = ClusterStore(database)
    assert await store.unowned_position(first) == 1
    assert await store.unowned_position(last) == WAITING
    front, back = await _plan(connection, first), await _plan(connection, last)
    for plan in (front, back):
        kinds = [(node["Node Type"], node.get("Index Name")) for node in _nodes(plan)]
        assert ("Seq Scan", None) not in kinds, kinds
        assert ("Index Only Scan", "ix_live_tasks_unowned") in kinds, kinds
    # The first in line reads a handful of pages, whatever waits behind it or ran before.
    assert front["Shared Hit Blocks"] + front["Shared Read Blocks"] < 20
