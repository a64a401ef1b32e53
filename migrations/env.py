"""Alembic environment: migrations run online, over asyncpg, against the configured database."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from store.config import DatabaseSettings
from store.embedded import start_embedded
from store.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def _url() -> URL | str:
    given = config.attributes.get("url")
    if given is not None:
        return given  # type: ignore[no-any-return]
    settings = DatabaseSettings()
    if settings.embedded:
        return start_embedded(settings.data_dir)
    return settings.external_url()


#: Instances of a cluster that start together migrate one after the other: the first
#: upgrades, the rest find the schema current (``b"STM-MIGR"`` as a bigint).
MIGRATION_LOCK = int.from_bytes(b"STM-MIGR", "big")


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # A transaction lock: released at the commit (or when a killed run's session ends).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run against a database")
asyncio.run(_run())
