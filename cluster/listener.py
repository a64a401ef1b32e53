"""One LISTEN connection per instance for the cluster's notifications, or polling.

Notifications wake the claimer, carry events and deletions to the hub, and cancels
to their owner. A lost connection is reconnected with backoff; meanwhile (and in
polling mode, where LISTEN is not available, as behind PgBouncer in transaction
mode) ``tick`` runs at a fixed interval and catches up from the journal. Each new
connection first checks that a notification sent elsewhere reaches it; one that
hears nothing falls back to polling for good.
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

from store.database import KEEPALIVES, connect_arguments

log = logging.getLogger(__name__)

Handler = Callable[[str], None]
Tick = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


#: The channel of the check that LISTEN works, and how long its notification may take.
_PROBE = "stm_probe"
PROBE_SECONDS = 3.0

#: Seconds a dedicated connection may take to open.
CONNECT_TIMEOUT = 10.0


class EventsMode(StrEnum):
    """How this instance hears of the others' writes."""

    LISTEN = "listen"
    POLL = "poll"
    #: LISTEN is configured but its connection is down: polling until it is back.
    RECONNECTING = "reconnecting"


async def dedicated_connection(
    url: URL | str, purpose: str, instance: str = "", **settings: str
) -> asyncpg.Connection:
    """A connection of the instance's own (not the pool's), with keepalives; its
    ``application_name`` says what for and whose (``pg_stat_activity`` shows it)."""
    name = f"stm {purpose} {instance}".strip()[:63]
    # Shielded, with a deadline of its own: asyncpg leaves an unretrieved error behind
    # when a connect is cancelled halfway (the instance stopping just as it connects).
    with anyio.CancelScope(shield=True), anyio.fail_after(CONNECT_TIMEOUT):
        connection: asyncpg.Connection = await asyncpg.connect(
            **connect_arguments(url),
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": name, **KEEPALIVES, **settings},
        )
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

    async def run(self) -> None:
        if self._poll:
            log.warning(
                "cluster events: polling every %.2f s (MANAGER_CLUSTER_EVENTS=poll)",
                self._poll_seconds,
            )
            await self._polling()
            return
        failures = 0
        while True:
            lost = anyio.Event()
            try:
                connection = await dedicated_connection(self._url, "listener", self._instance)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                failures += 1
                if failures == 1:
                    log.warning("cluster events: cannot LISTEN (%s); polling meanwhile", error)
                await self._poll_for(min(0.2 * 2**failures, 5.0))
                continue
            try:
                await self._listen(connection, lost)
                if not await self._delivers(connection):
                    log.warning(
                        "cluster events: LISTEN delivers nothing here (PgBouncer in"
                        " transaction mode?); polling every %.2f s instead",
                        self._poll_seconds,
                    )
                    self.mode = EventsMode.POLL
                    connection.terminate()
                    await self._polling()
                    return
                failures = 0
                self.mode = EventsMode.LISTEN
                self.listening.set()
                await self._safe_tick()  # what happened while nobody listened
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("cluster events: LISTEN failed (%s)", error)
            finally:
                self.listening = anyio.Event()
                self.mode = EventsMode.RECONNECTING
                connection.terminate()
            self.reconnections += 1
            log.warning("cluster events: the LISTEN connection was lost; reconnecting")

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
            sender = await dedicated_connection(self._probe_url, "probe", self._instance)
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

    async def _safe_tick(self) -> None:
        try:
            await self._tick()
        except Exception:  # noqa: BLE001 - a failed tick is tried again on the next
            log.exception("cluster events: catching up failed")


def _adapter(handler: Handler) -> Callable[[Any, int, str, str], None]:
    def on_notification(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        handler(payload)

    return on_notification
