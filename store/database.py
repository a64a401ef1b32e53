"""The connection pool, and how failures to reach the server surface: as ``JournalUnavailable``."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Silence:
    """How long a connection to the database may stay silent before it counts as lost:
    one number, ``seconds`` (the cluster's lease), from which every timeout follows.

    * TCP keepalives on the client's side: probes after ``seconds / 3`` idle, every
      ``seconds / 6``, three unanswered and the kernel drops the connection;
    * ``TCP_USER_TIMEOUT``: data unacknowledged for ``seconds`` drops it too (a
      partition in the middle of a statement);
    * the pool's ``command_timeout``: a statement answered after ``seconds`` is given up
      (``JournalUnavailable``; a write whose answer is lost this way is found by its
      seq on the next try);
    * the listener's heartbeat (``cluster.listener``) every ``seconds / 3``, with a
      deadline of as much: it hears its own notification, or it reconnects.

    Keepalives catch a path that died; only the heartbeat catches one that still
    acknowledges but delivers nothing (a stuck proxy, a half-open NAT entry).
    """

    seconds: float = 10.0

    @property
    def heartbeat(self) -> float:
        return self.seconds / 3

    def tune(self, connection: asyncpg.Connection) -> None:
        """Set the socket options on a new connection (TCP only; a Unix socket has none)."""
        sock = connection._transport.get_extra_info("socket")  # asyncpg has no public way
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        idle, interval = max(1, int(self.seconds / 3)), max(1, int(self.seconds / 6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.seconds * 1000))


async def _setup_connection(silence: Silence, connection: asyncpg.Connection) -> None:
    silence.tune(connection)
    # JSON columns in and out as Python values, as the models declare them.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )


#: Hosts whose traffic never leaves the machine.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def connect_arguments(url: URL | str) -> dict[str, Any]:
    """asyncpg's connection arguments for a SQLAlchemy URL (TCP, or a socket dir in ``host``).

    To a loopback host no TLS is negotiated: asyncpg's default ("prefer") asks the
    server first on every new connection, a round trip and a TLS context built on the
    event loop for traffic that never leaves the machine (and a connection cancelled in
    that step, as a pool closes, left an exception nobody retrieved). Elsewhere the
    default stands.
    """
    url = make_url(url)
    host = url.host or url.query.get("host")
    arguments: dict[str, Any] = {
        "host": host if isinstance(host, str) else None,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }
    if host in _LOOPBACK:
        arguments["ssl"] = False
    return arguments


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
    url: URL | str,
    *,
    pool_size: int = 10,
    acquire_timeout: float = 10.0,
    silence: Silence | None = None,
) -> AsyncIterator[Database]:
    """A pool of up to ``pool_size`` connections to ``url``; none is opened until used."""
    silence = silence or Silence()
    pool = asyncpg.create_pool(
        min_size=0,
        max_size=pool_size,
        init=functools.partial(_setup_connection, silence),
        command_timeout=silence.seconds,
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
