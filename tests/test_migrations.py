"""The migrations build exactly the schema that store/models.py declares.

Another migration with no change to the models (or a model change with no
migration) fails here, on each kind of server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import URL, Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from store.models import Base
from tests.conftest import empty_database, machine_pg_available

T = TypeVar("T")


async def _on(url: URL, work: Callable[[Connection], T]) -> T:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _index_definitions(connection: Connection) -> dict[str, str]:
    rows = connection.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
    )
    return {name: definition for name, definition in rows if name != "alembic_version_pkc"}


def test_upgrade_head_matches_the_models(database_url: URL) -> None:
    """Tables, columns, types, nullability, server defaults, keys and indexes."""
    assert anyio.run(_on, database_url, _differences) == []


def test_upgrade_head_builds_the_indexes_the_models_declare(
    database_url: URL, tmp_path: Path
) -> None:
    """As PostgreSQL spells them: alembic does not compare a partial index's predicate."""
    server = "machine" if machine_pg_available() else "embedded"
    declared = empty_database(server, tmp_path)
    anyio.run(_on, declared, Base.metadata.create_all)
    assert anyio.run(_on, database_url, _index_definitions) == anyio.run(
        _on, declared, _index_definitions
    )
