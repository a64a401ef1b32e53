"""The async engine, and how connection failures surface: as ``JournalUnavailable``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from supervisor.ports import JournalUnavailable


def create_engine(url: URL | str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine whose pool drops dead connections before handing them out."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"server_settings": {"application_name": "service-task-manager"}},
    )


_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    TimeoutError,
)


@contextmanager
def unavailable_on_disconnect() -> Iterator[None]:
    """Turn "the database is not there" into JournalUnavailable; other errors pass."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise JournalUnavailable(str(error.orig or error)) from error
    except DBAPIError as error:
        if error.connection_invalidated or isinstance(error.orig, _CONNECTION_ERRORS):
            raise JournalUnavailable(str(error.orig or error)) from error
        raise
    except _CONNECTION_ERRORS as error:
        raise JournalUnavailable(str(error)) from error


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One unit of work: a connection in a transaction, committed on success."""
    with unavailable_on_disconnect():
        async with engine.begin() as connection:
            yield connection


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        async with transaction(engine) as connection:
            await connection.execute(text("SELECT 1"))
    except JournalUnavailable:
        return False
    return True
