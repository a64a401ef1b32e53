"""The claimer's wakes: real notifications from real admissions, real claims.

Every ``stm_claimable`` reaches every instance; a burst of them must cost one claim
round, and an instance with no room none at all. The burst is "in" when the test has
seen every notification arrive (the settle the claimer waits for is the test's).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from cluster.claim_wakes import ClaimWakes, Settle
from cluster.listener import Listener
from store.cluster import ClusterStore
from store.database import connect_arguments, open_database
from supervisor.claims import Claims

pytestmark = pytest.mark.anyio

BURST = 20


async def _nothing() -> None:
    await anyio.lowlevel.checkpoint()


@dataclass
class Claimer:
    """An instance's claimer, reduced to its wakes and its claim statements."""

    wakes: ClaimWakes
    claims: Claims
    heard: int = 0
    claimed: list[uuid.UUID] = field(default_factory=list)
    #: Set (and replaced) each time ``heard`` or ``claimed`` grows: every waiter wakes.
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def on_claimable(self, _payload: str) -> None:
        self.wakes.wake(unowned=True)
        self.heard += 1
        self.changed()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(30):
            while not condition():
                await self._changed.wait()


async def _admit_unowned(connection: asyncpg.Connection) -> None:
    """A task admitted while its instance was full: left unowned (one transaction)."""
    task_id = uuid.uuid4()
    async with connection.transaction():
        await connection.execute(
            "INSERT INTO tasks (id, user_id, title, language, status, last_seq)"
            " VALUES ($1, $2, 'burst', 'en-US', 'created', 1)",
            task_id,
            uuid.uuid4(),
        )
        await connection.execute("INSERT INTO live_tasks (task_id) VALUES ($1)", task_id)


@pytest.fixture
async def admissions(service_database_url: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(**connect_arguments(service_database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def _running_claimer(
    url: URL,
    limit: int,
    settle: Callable[[Claimer], Settle],
    body: Callable[[Claimer], Awaitable[None]],
) -> Claimer:
    """A member with a claim ``limit`` whose claimer claims for real on each round."""
    claims = Claims(uuid.uuid4(), limit)
    admin = await asyncpg.connect(**connect_arguments(url))
    try:
        await admin.execute(
            "INSERT INTO cluster_instances (id, name, lock_key, lease_until)"
            " VALUES ($1, 'wakes', $2, now() + interval '1 hour')",
            claims.instance_id,
            secrets.randbits(62),
        )
    finally:
        await admin.close()
    claimer = Claimer(ClaimWakes(claims), claims)
    claimer.wakes = ClaimWakes(claims, settle=settle(claimer))

    async def tick() -> None:
        pass

    listener = Listener(
        url, {"stm_claimable": claimer.on_claimable}, tick, poll=False, poll_seconds=1.0
    )
    async with open_database(url, pool_size=2) as database:
        store = ClusterStore(database)

        async def claiming() -> None:
            while True:
                await claimer.wakes.next_round()
                claimer.wakes.maybe_unowned = False
                for task in await store.claim(claims.instance_id, claims.room):
                    claims.hold(task.snapshot.id, task.generation)
                    claimer.claimed.append(task.snapshot.id)
                claimer.changed()

        async with anyio.create_task_group() as group:
            group.start_soon(listener.run)
            group.start_soon(claiming)
            with anyio.fail_after(30):
                await listener.listening.wait()
            await body(claimer)
            group.cancel_scope.cancel()
    return claimer


async def test_a_burst_of_notifications_is_one_claim_round(
    service_database_url: URL, admissions: asyncpg.Connection
) -> None:
    def settle(claimer: Claimer) -> Settle:
        async def burst_in() -> None:
            await claimer.until(lambda: claimer.heard >= BURST)

        return burst_in

    async def burst(claimer: Claimer) -> None:
        for _ in range(BURST):
            await _admit_unowned(admissions)
        await claimer.until(lambda: len(claimer.claimed) == BURST)

    claimer = await _running_claimer(service_database_url, 64, settle, burst)
    assert claimer.heard == BURST
    assert claimer.wakes.rounds == 1  # not one per notification
    assert not claimer.wakes.pending


async def test_an_instance_without_room_runs_no_claim_on_a_wake(
    service_database_url: URL, admissions: asyncpg.Connection
) -> None:
    async def full_then_one_ends(claimer: Claimer) -> None:
        running = [uuid.uuid4(), uuid.uuid4()]
        for task_id in running:
            claimer.claims.hold(task_id, 1)  # full: two tasks of its own run
        for _ in range(BURST):
            await _admit_unowned(admissions)
        await claimer.until(lambda: claimer.heard >= BURST)
        assert claimer.wakes.rounds == 0
        assert not claimer.wakes.pending
        # One of its tasks ends (``ClusterMember._ended``): room for one, one round.
        claimer.claims.drop(running[0])
        claimer.wakes.wake()
        await claimer.until(lambda: len(claimer.claimed) == 1)

    claimer = await _running_claimer(
        service_database_url, 2, lambda _: _nothing, full_then_one_ends
    )
    assert claimer.wakes.rounds == 1
    assert len(claimer.claimed) == 1
