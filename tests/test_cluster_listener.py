"""The listener against a real PostgreSQL: notifications, a connection killed by the
server, and the fallback to polling where LISTEN delivers nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from cluster.listener import EventsMode, Listener
from store.database import connect_arguments
from supervisor.ports import JournalUnavailable
from tests.conftest import _fresh_database, machine_pg_available

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not machine_pg_available(), reason="no PostgreSQL on the machine"),
]


async def _execute(url: URL, sql: str, *args: object) -> None:
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


class _Heard:
    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.ticks = 0
        self.arrived = anyio.Event()
        self.ticked = anyio.Event()

    def event(self, payload: str) -> None:
        self.payloads.append(payload)
        self.arrived.set()

    async def tick(self) -> None:
        self.ticks += 1
        self.ticked.set()


@pytest.fixture
def url(tmp_path: Path) -> URL:
    return _fresh_database("machine", tmp_path / "listened")


@pytest.fixture
def elsewhere(tmp_path: Path) -> URL:
    return _fresh_database("machine", tmp_path / "elsewhere")


async def test_notifications_arrive_and_a_killed_connection_comes_back_and_catches_up(
    url: URL,
) -> None:
    heard = _Heard()
    listener = Listener(
        url, {"stm_events": heard.event}, heard.tick, poll=False, poll_seconds=0.05, instance="T"
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.run)
        with anyio.fail_after(20):
            await listener.listening.wait()
            assert listener.mode is EventsMode.LISTEN
            await _execute(url, "SELECT pg_notify('stm_events', 'a:1')")
            await heard.arrived.wait()
            assert heard.payloads == ["a:1"]
            ticks = heard.ticks
            heard.ticked = anyio.Event()
            await _execute(
                url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'stm listener T' AND datname = current_database()",
            )
            # In LISTEN mode it catches up while it reconnects and once connected.
            await heard.ticked.wait()
            while not listener.listening.is_set():
                heard.ticked = anyio.Event()
                await heard.ticked.wait()
            assert heard.ticks > ticks
            assert listener.reconnections == 1
            heard.arrived = anyio.Event()
            await _execute(url, "SELECT pg_notify('stm_events', 'a:2')")
            await heard.arrived.wait()
            assert heard.payloads == ["a:1", "a:2"]
        group.cancel_scope.cancel()


async def test_where_listen_delivers_nothing_the_listener_polls_and_says_so(
    url: URL, elsewhere: URL, caplog: pytest.LogCaptureFixture
) -> None:
    heard = _Heard()
    # The probe's notification goes to another database, as a transaction pooler would
    # send it through another server connection: it never arrives.
    listener = Listener(
        url, {}, heard.tick, poll=False, poll_seconds=0.01, instance="P", probe_url=elsewhere
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.run)
        with anyio.fail_after(20):  # it catches up while it connects and checks, then polls
            while listener.mode is not EventsMode.POLL or heard.ticks < 3:
                heard.ticked = anyio.Event()
                await heard.ticked.wait()
        assert listener.mode is EventsMode.POLL
        group.cancel_scope.cancel()
    assert "LISTEN delivers nothing here" in caplog.text


async def test_one_probe_that_heard_nothing_does_not_make_polling_for_ever(
    url: URL, elsewhere: URL
) -> None:
    """The first check that LISTEN works hears nothing (slow, or sent astray): the
    listener polls, then tries LISTEN again, and listens once the check passes."""
    heard = _Heard()
    listener = Listener(
        url,
        {},
        heard.tick,
        poll=False,
        poll_seconds=0.05,
        instance="R",
        probe_url=elsewhere,  # this check's notification never arrives
        probe_again_seconds=0.2,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(listener.run)
        with anyio.fail_after(30):
            while listener.mode is not EventsMode.POLL:
                heard.ticked = anyio.Event()
                await heard.ticked.wait()
            listener._probe_url = url  # the next check is heard
            while not listener.listening.is_set():
                heard.ticked = anyio.Event()
                await heard.ticked.wait()
        assert listener.mode.value == "listen"  # (mypy narrowed it to POLL above)
        group.cancel_scope.cancel()


async def test_a_catch_up_that_fails_once_listening_is_tried_again_until_it_gets_through(
    url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    """A notification lost with the old connection is told by nothing but the catch-up:
    one that fails (the database only half back) must not be the last word."""
    tries: list[str] = []
    through = anyio.Event()

    async def tick() -> None:
        if not listener.listening.is_set():
            return  # the catching up while it connects
        if not tries:
            tries.append("failed")
            raise JournalUnavailable("the database is starting up")
        tries.append("through")
        through.set()

    listener = Listener(url, {}, tick, poll=False, poll_seconds=60, instance="C")
    async with anyio.create_task_group() as group:
        group.start_soon(listener.run)
        with anyio.fail_after(20):
            await through.wait()
        group.cancel_scope.cancel()
    assert tries == ["failed", "through"]
    assert listener.reconnections == 0  # on the same connection, not by luck of a new one
    failed = [r for r in caplog.records if "catching up failed" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in failed] == [("WARNING", None)]  # one line
