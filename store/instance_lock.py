"""One instance runs the tasks of a database: a session-level advisory lock says which.

Until ownership of tasks moves into the database (the cluster feature), a second
instance would recover the live tasks of the first and run them twice. The lock is
held by a connection of its own for the life of the process; PostgreSQL releases it
when that connection ends, so a ``kill -9`` frees it as soon as the server notices.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import asyncpg
from sqlalchemy import URL, make_url

from store.database import connect_arguments

log = logging.getLogger(__name__)

#: The advisory lock key (``b"STM-RUNS"`` as a big-endian bigint). Advisory locks are
#: per database, so instances on different databases of one server do not meet.
LOCK_KEY = int.from_bytes(b"STM-RUNS", "big")

_APPLICATION_NAME = "service-task-manager instance lock"


class AnotherInstanceRunning(Exception):
    """Another live instance holds the lock on this database."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"another instance is running tasks on this database ({where}); stop it first"
        )


def describe(url: URL | str) -> str:
    """The database of ``url`` as a libpq URI without the password.

    ``postgres://user@host:port/name``, or ``postgres://user@/name?host=/dir`` for a
    Unix socket (the embedded server).
    """
    args = connect_arguments(make_url(url))
    host, port = args["host"] or "", f":{args['port']}" if args["port"] else ""
    user, database = args["user"] or "", args["database"] or ""
    if host.startswith("/"):
        return f"postgres://{user}@/{database}?host={host}"
    return f"postgres://{user}@{host}{port}/{database}"


#: How long a held lock is waited for before giving up: a holder killed a moment ago
#: (a restart right after ``kill -9``) is gone as soon as its server process sees it.
GRACE_SECONDS = 3.0


@asynccontextmanager
async def hold_instance_lock(
    url: URL | str, *, grace: float = GRACE_SECONDS
) -> AsyncIterator[None]:
    """Hold the instance lock of the database at ``url`` while the block runs.

    Raises AnotherInstanceRunning when another session still has it after ``grace``.
    """
    connection = await asyncpg.connect(
        **connect_arguments(url), server_settings={"application_name": _APPLICATION_NAME}
    )
    try:
        if not await _take(connection, grace):
            raise AnotherInstanceRunning(describe(url))
        connection.add_termination_listener(_lost)
        yield
    finally:
        connection.remove_termination_listener(_lost)
        with anyio.CancelScope(shield=True):
            await _close(connection)


async def _take(connection: asyncpg.Connection, grace: float) -> bool:
    if await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        return True
    # Held: wait on the server, which wakes this the moment the holder's session ends.
    try:
        async with connection.transaction():
            await connection.execute(f"SET LOCAL lock_timeout = {max(1, int(grace * 1000))}")
            await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    except asyncpg.LockNotAvailableError:
        return False
    return True  # a session lock: it outlives the transaction


def _lost(connection: asyncpg.Connection) -> None:
    # A restart of the server ends the session, and the lock with it; the tasks run
    # on, but nothing keeps a second instance out any more.
    log.warning("instance lock: its connection was lost; a second instance could now start")


async def _close(connection: asyncpg.Connection) -> None:
    """Close the connection, which releases the lock; a dead one is just dropped."""
    try:
        with anyio.fail_after(5):
            await connection.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("instance lock: the connection ended badly (%s)", error)
        connection.terminate()
