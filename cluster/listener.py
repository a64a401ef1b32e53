"""One LISTEN connection per instance for the cluster's notifications, or polling.

Notifications wake the claimer, carry events and deletions to the hub, and cancels
to their owner. A lost connection is reconnected with backoff; meanwhile (and in
polling mode, where LISTEN is not available, as behind PgBouncer in transaction
mode) ``tick`` runs at a fixed interval and catches up from the journal. Each new
connection first checks that a notification sent elsewhere reaches it; one that
hears nothing falls back to polling for good. A listening connection notifies itself
every so often (a heartbeat, ``store.database.Silence``): a partition can leave it open
and deaf, and one that does not hear itself in time is dropped and opened again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import anyio
import asyncpg
from sqlalchemy import URL

from store.database import KEEPALIVES, Silence, connect_arguments
from supervisor.ports import JournalUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[str], None]
Tick = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


#: The channel of the check that LISTEN works, and how long its notification may take.
_PROBE = "stm_probe"
PROBE_SECONDS = 3.0
#: After a probe that heard nothing: LISTEN is tried again after this long, doubling
#: up to the cap while it keeps failing.
PROBE_AGAIN_SECONDS = 60.0
PROBE_AGAIN_CAP = 3600.0

#: Seconds a dedicated connection may take to open.
CONNECT_TIMEOUT = 10.0


class EventsMode(StrEnum):
    """How this instance hears of the others' writes."""

    LISTEN = "listen"
    POLL = "poll"
    #: LISTEN is configured but its connection is down: polling until it is back.
    RECONNECTING = "reconnecting"


async def dedicated_connection(
    url: URL | str,
    purpose: str,
    instance: str = "",
    *,
    silence: Silence | None = None,
    **settings: str,
) -> asyncpg.Connection:
    """A connection of the instance's own (not the pool's), with keepalives on both
    sides (``store.database.Silence``); its ``application_name`` says what for and
    whose (``pg_stat_activity`` shows it)."""
    name = f"stm {purpose} {instance}".strip()[:63]
    # Shielded, with a deadline of its own: asyncpg leaves an unretrieved error behind
    # when a connect is cancelled halfway (the instance stopping just as it connects).
    with anyio.CancelScope(shield=True), anyio.fail_after(CONNECT_TIMEOUT):
        connection: asyncpg.Connection = await asyncpg.connect(
            **connect_arguments(url),
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": name, **KEEPALIVES, **settings},
        )
    (silence or Silence()).tune(connection)
    return connection


class Listener:
    """Delivers notifications to ``handlers`` (by channel); calls ``tick`` when it must
    catch up: after each (re)connection, and every ``poll_seconds`` while polling."""

    def __init__(
        self,
        url: URL | str,
        handlers: Mapping[str, Handler],
        tick: Tick,
        *,
        poll: bool,
        poll_seconds: float,
        instance: str = "",
        sleep: Sleep = anyio.sleep,
        probe_url: URL | str | None = None,
        silence: Silence | None = None,
        probe_again_seconds: float = PROBE_AGAIN_SECONDS,
    ) -> None:
        self._url = url
        #: Where the check that LISTEN works sends its notification (the same database;
        #: tests point it elsewhere to see the fallback).
        self._probe_url = probe_url or url
        self._instance = instance
        self._handlers = handlers
        self._tick = tick
        self._poll = poll
        self._poll_seconds = poll_seconds
        self._sleep = sleep
        self.mode = EventsMode.POLL if poll else EventsMode.RECONNECTING
        #: Set while LISTEN is up (tests wait for it).
        self.listening = anyio.Event()
        self.reconnections = 0
        self._silence = silence or Silence()
        self._probe_again = probe_again_seconds
        #: The heartbeat's channel (this connection's own) and the beat it waits for.
        self._beat_channel = f"stm_beat_{secrets.token_hex(6)}"
        self._beat = ""
        self._beat_heard = anyio.Event()

    async def run(self) -> None:
        if self._poll:
            log.warning(
                "cluster events: polling every %.2f s (MANAGER_CLUSTER_EVENTS=poll)",
                self._poll_seconds,
            )
            await self._polling()
            return
        failures = deaf = 0
        while True:
            lost = anyio.Event()
            connection = await self._connect_catching_up()
            if connection is None:
                failures += 1
                await self._poll_for(min(0.2 * 2**failures, 5.0))
                continue
            try:
                await self._listen(connection, lost)
                if not await self._delivers(connection):
                    # One slow probe must not make polling for ever: look again later
                    # (and less often each time it fails again).
                    deaf += 1
                    again = min(self._probe_again * 2 ** (deaf - 1), PROBE_AGAIN_CAP)
                    if deaf == 1:
                        log.warning(
                            "cluster events: LISTEN delivers nothing here (PgBouncer in"
                            " transaction mode?); polling every %.2f s instead, and"
                            " trying LISTEN again in %.0f s",
                            self._poll_seconds,
                            again,
                        )
                    self.mode = EventsMode.POLL
                    connection.terminate()
                    await self._poll_for(again)
                    continue
                failures = deaf = 0
                self.mode = EventsMode.LISTEN
                self.listening.set()
                async with anyio.create_task_group() as group:
                    group.start_soon(self._heartbeat, connection, lost)
                    # What happened while nobody listened; no notification will say it.
                    group.start_soon(self._catch_up_until_through)
                    await lost.wait()
                    group.cancel_scope.cancel()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("cluster events: LISTEN failed (%s)", error)
            finally:
                self.listening = anyio.Event()
                self.mode = EventsMode.RECONNECTING
                connection.terminate()
            self.reconnections += 1
            log.warning("cluster events: the LISTEN connection was lost; reconnecting")

    async def _connect_catching_up(self) -> asyncpg.Connection | None:
        """A new listening connection (None: it failed); catching up every poll
        interval while it is being opened, which a partition can make take long."""
        connection: asyncpg.Connection | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._polling)
                try:
                    connection = await dedicated_connection(
                        self._url, "listener", self._instance, silence=self._silence
                    )
                except (
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as error:
                    log.warning("cluster events: cannot LISTEN (%s); polling meanwhile", error)
                finally:
                    group.cancel_scope.cancel()
        except BaseException:
            # Stopped (or the polling failed) just as the connection opened: it is closed
            # here, or it would be left to the garbage collector.
            if connection is not None:
                connection.terminate()
            raise
        return connection

    async def _heartbeat(self, connection: asyncpg.Connection, lost: anyio.Event) -> None:
        """Every ``Silence.heartbeat`` seconds, notify this connection's own channel on
        it: the answer and the notification must both arrive within as long, or the
        connection is deaf (a partition keeps it open and silent) and is dropped."""
        await connection.add_listener(self._beat_channel, self._heard_beat)
        while not lost.is_set():
            await self._sleep(self._silence.heartbeat)
            if not await self._beats(connection):
                log.warning(
                    "cluster events: the LISTEN connection heard nothing for %.1f s; reconnecting",
                    self._silence.heartbeat,
                )
                lost.set()

    async def _beats(self, connection: asyncpg.Connection) -> bool:
        """One heartbeat. At its deadline the connection is terminated, not the
        statement cancelled (a cancel request would go out on a path just found dead)."""
        self._beat = secrets.token_hex(8)
        heard = self._beat_heard = anyio.Event()
        late = False

        async def deadline() -> None:
            nonlocal late
            await anyio.sleep(self._silence.heartbeat)
            late = True
            connection.terminate()
            heard.set()

        async with anyio.create_task_group() as group:
            group.start_soon(deadline)
            try:
                await connection.execute("SELECT pg_notify($1, $2)", self._beat_channel, self._beat)
                await heard.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                late = True
            group.cancel_scope.cancel()
        return not late

    def _heard_beat(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._beat:
            self._beat_heard.set()

    async def _listen(self, connection: asyncpg.Connection, lost: anyio.Event) -> None:
        def lost_it(_: Any) -> None:
            lost.set()

        connection.add_termination_listener(lost_it)
        for channel, handler in self._handlers.items():
            await connection.add_listener(channel, _adapter(handler))

    async def _delivers(self, listening: asyncpg.Connection) -> bool:
        """Whether a notification sent on another connection reaches ``listening``:
        through a pooler that switches server connections it never does."""
        nonce = secrets.token_hex(8)
        arrived = anyio.Event()

        def heard(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload == nonce:
                arrived.set()

        await listening.add_listener(_PROBE, heard)
        try:
            sender = await dedicated_connection(
                self._probe_url, "probe", self._instance, silence=self._silence
            )
            try:
                await sender.execute("SELECT pg_notify($1, $2)", _PROBE, nonce)
            finally:
                sender.terminate()
            with anyio.move_on_after(PROBE_SECONDS):
                await arrived.wait()
        finally:
            await listening.remove_listener(_PROBE, heard)
        return arrived.is_set()

    async def _poll_for(self, seconds: float) -> None:
        """Wait ``seconds`` between reconnections, catching up every poll interval."""
        with anyio.move_on_after(seconds):
            await self._polling()

    async def _polling(self) -> None:
        while True:
            await self._safe_tick()
            await self._sleep(self._poll_seconds)

    async def _catch_up_until_through(self) -> None:
        """Catch up once the connection listens, and again until it gets through: a
        notification lost with the old connection (a final event) is told by nothing
        else, and the catch-up fails when the database is only half back."""
        failures = 0
        while not await self._safe_tick():
            failures += 1
            await self._sleep(min(0.2 * 2**failures, 5.0))

    async def _safe_tick(self) -> bool:
        """One catch-up; whether it got through (a failed one is tried again)."""
        try:
            await self._tick()
        except (JournalUnavailable, OSError, TimeoutError, asyncpg.PostgresError) as error:
            # The database away for a moment: one line, not a traceback per attempt.
            reason = str(error) or type(error).__name__
            log.warning("cluster events: catching up failed (%s); trying again", reason)
            return False
        except Exception:  # noqa: BLE001 - a failed tick is tried again
            log.exception("cluster events: catching up failed")
            return False
        return True


def _adapter(handler: Handler) -> Callable[[Any, int, str, str], None]:
    def on_notification(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        handler(payload)

    return on_notification
