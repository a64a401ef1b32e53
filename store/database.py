"""The connection pool, and how failures to reach the server surface: as ``JournalUnavailable``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from sqlalchemy import URL, make_url

from ops.metrics import POOL_IN_USE, POOL_WAITS
from store.sql import Query
from supervisor.ports import JournalUnavailable

#: SQLSTATEs of a server that is away for now: connection exceptions (class 08),
#: an administrator's shutdown, a crash, or a start-up still in progress (57P01..57P03),
#: and a server with no connection slot free (53300).
_AWAY_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def _server_away(error: BaseException) -> bool:
    if isinstance(error, OSError | TimeoutError | asyncpg.PostgresConnectionError):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        # asyncpg's word for a connection that died under a query; its other
        # interface errors are misuse and must not pass for an outage.
        return "connection is closed" in str(error) or "connection was closed" in str(error)
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_AWAY_STATES)


@contextmanager
def unavailable_on_disconnect() -> Iterator[None]:
    """Turn "the database is not there" into JournalUnavailable; other errors pass.

    A pool where every connection stays busy past the acquire timeout is reported
    the same way: overloaded, not broken, and worth trying again later.
    """
    try:
        yield
    except JournalUnavailable:
        raise
    except Exception as error:
        if _server_away(error):
            raise JournalUnavailable(f"{type(error).__name__}: {error}") from error
        raise


class Row(asyncpg.Record):  # type: ignore[misc]  # asyncpg is untyped
    """A result row whose columns read as attributes too (``row.status``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Hand a released connection back as it is.

    asyncpg's default reset costs a round trip per release (RESET ALL, UNLISTEN,
    advisory unlocks...) to undo session state this service never sets; an open
    transaction is still rolled back by the pool before this is called.
    """


async def _setup_connection(connection: asyncpg.Connection) -> None:
    # JSON columns in and out as Python values, as the models declare them.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )


def connect_arguments(url: URL | str) -> dict[str, Any]:
    """asyncpg's connection arguments for a SQLAlchemy URL (TCP, or a socket dir in ``host``)."""
    url = make_url(url)
    host = url.host or url.query.get("host")
    return {
        "host": host if isinstance(host, str) else None,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


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


#: TCP keepalives the server applies to the session (ignored on a Unix socket): a
#: client that vanished has its session, and its locks, ended in about 11 s.
KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}

#: A connection that died under a query (the server restarted, say).
_LOST = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError)

_PING = Query("SELECT 1", (), {}, idempotent=True)


class Database:
    """A pool of asyncpg connections, opened lazily, for compiled ``Query`` objects.

    Every statement is its own transaction: the writes that belong together are one
    statement (data-modifying CTEs), so no caller holds a connection across awaits.
    There is no pre-ping: a connection the server closed is noticed by the event
    loop and replaced by the pool on its next use, and an idempotent query that
    meets a connection dying under it runs once more on a fresh one.
    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    async def rows(self, query: Query, **params: Any) -> list[Row]:
        result: list[Row] = await self._run("fetch", query, params)
        return result

    async def row(self, query: Query, **params: Any) -> Row | None:
        result: Row | None = await self._run("fetchrow", query, params)
        return result

    async def value(self, query: Query, **params: Any) -> Any:
        return await self._run("fetchval", query, params)

    async def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            await self.value(_PING)
        except JournalUnavailable:
            return False
        return True

    async def _run(self, method: str, query: Query, params: dict[str, Any]) -> Any:
        args = query.args(params)
        try:
            return await self._once(method, query.sql, args)
        except JournalUnavailable as error:
            if not (query.idempotent and isinstance(error.__cause__, _LOST)):
                raise
            return await self._once(method, query.sql, args)

    async def _once(self, method: str, sql: str, args: list[Any]) -> Any:
        pool = self._pool
        if pool.get_idle_size():
            # One is free and handed over without a wait: spare the timeout's timer.
            borrowed = pool.acquire()
        else:
            if pool.get_size() >= pool.get_max_size():
                POOL_WAITS.inc()  # every connection is open and lent out: this one waits
            borrowed = pool.acquire(timeout=self._acquire_timeout)
        with unavailable_on_disconnect():
            async with borrowed as connection:
                POOL_IN_USE.inc()
                try:
                    return await getattr(connection, method)(sql, *args)
                finally:
                    POOL_IN_USE.dec()

    async def row_with_upload(
        self, query: Query, chunks: AsyncIterator[bytes], **params: Any
    ) -> Row | None:
        """``row``, with ``a_oid`` a large object that ``chunks`` are written to first.

        The one exception to a statement per transaction: a large upload goes to the
        server a chunk at a time (``lo_put``), so the process never holds it whole, and
        the large object lives only inside this transaction (unlinked, or rolled back).
        """
        with unavailable_on_disconnect():
            async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
                POOL_IN_USE.inc()
                try:
                    async with connection.transaction():
                        oid = await connection.fetchval("SELECT lo_create(0)")
                        offset = 0
                        async for chunk in chunks:
                            await connection.execute(
                                "SELECT lo_put($1, $2, $3)", oid, offset, chunk
                            )
                            offset += len(chunk)
                        row: Row | None = await connection.fetchrow(
                            query.sql, *query.args({**params, "a_oid": oid})
                        )
                        await connection.execute("SELECT lo_unlink($1)", oid)
                        return row
                finally:
                    POOL_IN_USE.dec()


@asynccontextmanager
async def open_database(
    url: URL | str, *, pool_size: int = 10, acquire_timeout: float = 10.0
) -> AsyncIterator[Database]:
    """A pool of up to ``pool_size`` connections to ``url``; none is opened until used."""
    pool = asyncpg.create_pool(
        min_size=0,
        max_size=pool_size,
        init=_setup_connection,
        reset=_keep_session,
        record_class=Row,
        # Keepalives: a server (or a path to it) that vanished is noticed in seconds.
        server_settings={"application_name": "service-task-manager", **KEEPALIVES},
        **connect_arguments(url),
    )
    await pool
    try:
        yield Database(pool, acquire_timeout=acquire_timeout)
    finally:
        await pool.close()
