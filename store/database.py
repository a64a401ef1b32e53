"""The async engine, and how connection failures surface: as ``JournalUnavailable``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from supervisor.ports import JournalUnavailable


def create_engine(url: URL | str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine whose pool drops dead connections before handing them out.

    Connections autocommit unless ``transaction`` opens one: a lone statement then
    costs one round trip, and so does the pre-ping (in a transaction it costs three).
    """
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
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


#: SQLSTATEs of a server that is away for now: connection exceptions (class 08), and
#: an administrator's shutdown, a crash, or a start-up still in progress (57P01..57P03).
_AWAY_STATES = ("08", "57P01", "57P02", "57P03")


def _server_away(error: DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    # SQLAlchemy wraps asyncpg's exception in its own DBAPI class: look at the driver's.
    driver = getattr(error.orig, "driver_exception", error.orig)
    if isinstance(driver, _CONNECTION_ERRORS):
        return True
    state = getattr(driver, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_AWAY_STATES)


@contextmanager
def unavailable_on_disconnect() -> Iterator[None]:
    """Turn "the database is not there" into JournalUnavailable; other errors pass."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise JournalUnavailable(str(error.orig or error)) from error
    except PoolTimeout as error:  # every connection busy for pool_timeout: overloaded, not broken
        raise JournalUnavailable(str(error)) from error
    except DBAPIError as error:
        if _server_away(error):
            raise JournalUnavailable(str(error.orig or error)) from error
        raise
    except _CONNECTION_ERRORS as error:
        raise JournalUnavailable(str(error)) from error


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One unit of work: a connection in a transaction, committed on success."""
    with unavailable_on_disconnect():
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="READ COMMITTED")
            async with connection.begin():
                yield connection


@asynccontextmanager
async def statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for one statement, which is its own transaction (autocommit).

    Saves the BEGIN and COMMIT round trips of ``transaction`` where one statement
    (a read, or a write whose parts are joined in one statement) is the unit of work.
    """
    with unavailable_on_disconnect():
        async with engine.connect() as connection:
            yield connection


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        async with transaction(engine) as connection:
            await connection.execute(text("SELECT 1"))
    except JournalUnavailable:
        return False
    return True
