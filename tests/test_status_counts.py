"""The operator overview's tasks per status: kept by triggers on ``tasks`` (migration
0008), read without a row of ``tasks``, and always what a count over ``tasks`` says."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import URL

from store.admin import _BY_STATUS, AdminStore
from store.database import Database, connect_arguments, open_database
from store.migrate import ROOT
from tests.conftest import empty_database, machine_pg_available, sql_rows

FOLD_EVERY: int = importlib.import_module("migrations.versions.0008_task_status_counts").FOLD_EVERY


def _tasks(count: int, status: str) -> str:
    """SQL adding ``count`` tasks in ``status``, one statement."""
    return f"""
    INSERT INTO tasks (id, user_id, title, language, status, last_seq)
    SELECT gen_random_uuid(), gen_random_uuid(), 'task', 'en-US', '{status}', 1
    FROM generate_series(1, {count})
    """


async def _scanned(url: URL) -> dict[str, int]:
    """The counts the slow way: what the overview must equal."""
    rows = await sql_rows(url, "SELECT status, count(*) AS n FROM tasks GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


@pytest.fixture
async def database(service_database_url: URL) -> AsyncIterator[Database]:
    async with open_database(service_database_url, pool_size=2) as opened:
        yield opened


@pytest.mark.anyio
async def test_the_overview_reads_no_row_of_tasks(
    service_database_url: URL, database: Database
) -> None:
    """Many tasks, analysed: a count over ``tasks`` would read it (a Seq Scan, or its
    whole status index); the overview's counts read only the few rows of counts."""
    url = service_database_url
    await sql_rows(url, _tasks(20_000, "completed"))
    await sql_rows(url, _tasks(100, "created"))
    await sql_rows(url, "ANALYZE tasks")
    plan = "\n".join(row[0] for row in await sql_rows(url, "EXPLAIN " + _BY_STATUS.sql))
    assert " on tasks" not in plan, plan
    assert await AdminStore(database).counts() == {"completed": 20_000, "created": 100}


@pytest.mark.anyio
async def test_the_counts_follow_every_insert_update_and_delete(
    service_database_url: URL, database: Database
) -> None:
    url = service_database_url
    await sql_rows(url, _tasks(3 * FOLD_EVERY, "created"))  # enough rows to fold
    await sql_rows(
        url, "UPDATE tasks SET status = 'queued' WHERE ctid IN (SELECT ctid FROM tasks LIMIT 700)"
    )
    await sql_rows(
        url, "UPDATE tasks SET status = 'completed' WHERE status = 'queued' AND random() < 0.5"
    )
    await sql_rows(url, "UPDATE tasks SET last_seq = last_seq + 1")  # no status change: no row
    await sql_rows(url, "UPDATE tasks SET status = status WHERE status = 'created'")  # the same
    await sql_rows(url, "DELETE FROM tasks WHERE status = 'completed' AND random() < 0.5")
    connection = await asyncpg.connect(**connect_arguments(url))
    try:  # a transaction that does not commit changes no count
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("UPDATE tasks SET status = 'failed'")
        await transaction.rollback()
    finally:
        await connection.close()
    await sql_rows(url, "DELETE FROM tasks WHERE status = 'queued'")  # every one: no zero line
    assert await AdminStore(database).counts() == await _scanned(url)
    assert "queued" not in await AdminStore(database).counts()
    # Folded as they went: the overview sums few rows, however many changes there were.
    rows = await sql_rows(url, "SELECT count(*) AS n FROM task_status_counts")
    assert rows[0]["n"] < FOLD_EVERY + 20


@pytest.mark.anyio
async def test_writes_from_many_connections_at_once_are_all_counted(
    service_database_url: URL, database: Database
) -> None:
    """The rows are appended and folds skip what another holds: nobody waits, nobody
    is lost, even with folds running in several writes at once."""
    url = service_database_url
    await sql_rows(url, _tasks(400, "created"))

    async def moving(share: int) -> None:
        connection = await asyncpg.connect(**connect_arguments(url))
        try:
            for _ in range(FOLD_EVERY // 8):
                await connection.execute(
                    "UPDATE tasks SET status = CASE status WHEN 'created' THEN 'queued'"
                    " ELSE 'created' END"
                    " WHERE id = (SELECT id FROM tasks WHERE abs(hashtext(id::text)) % 4 = $1"
                    " ORDER BY random() LIMIT 1)",
                    share,
                )
        finally:
            await connection.close()

    async with anyio.create_task_group() as group:
        for share in range(4):
            group.start_soon(moving, share)
    assert await AdminStore(database).counts() == await _scanned(url)


def _alembic(url: URL, action: str, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    getattr(command, action)(config, revision)


def test_migration_0008_counts_the_tasks_already_there_and_goes_back_down(
    tmp_path: Path,
) -> None:
    url = empty_database("machine" if machine_pg_available() else "embedded", tmp_path)
    _alembic(url, "upgrade", "0007")
    anyio.run(sql_rows, url, _tasks(30, "completed"))
    anyio.run(sql_rows, url, _tasks(5, "failed"))
    _alembic(url, "upgrade", "head")
    counts = {"completed": 30, "failed": 5}

    async def overview() -> dict[str, int]:
        async with open_database(url, pool_size=1) as database:
            return await AdminStore(database).counts()

    assert anyio.run(overview) == counts
    _alembic(url, "downgrade", "0007")
    tables = anyio.run(sql_rows, url, "SELECT to_regclass('task_status_counts') AS t")
    assert tables[0]["t"] is None
    anyio.run(sql_rows, url, _tasks(2, "failed"))  # no trigger left to fail for want of its table
    _alembic(url, "upgrade", "head")
    assert anyio.run(overview) == {"completed": 30, "failed": 7}
