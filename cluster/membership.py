"""Who is alive: a session-level advisory lock per instance, and a lease as the backstop.

Each instance holds its own lock on a connection of its own; PostgreSQL releases it
the moment that session ends (the process died, or the server noticed its machine
go), and the instance watching it, blocked on the same lock, wakes at once and
deletes the dead one's row: its live tasks are then unowned, for the others to claim.
Each instance watches the next one in key order (a ring), so one blocked connection
each watches them all. A hung process (stopped, or a half-open connection) keeps its
lock, so each instance also renews a lease on the database clock, and every renewal
deletes the members whose lease ran out. An instance that finds its own row gone was
presumed dead: it gives up every task and joins again under a new identity.

A lease that ran out or a lock found free is evidence only when the instance looking
has reached the database without a break for a lease: after a restart or an outage of
everybody every lease ran out and every lock came free, and the others reconnect in
their own time.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import anyio
import asyncpg
from sqlalchemy import URL

from cluster.listener import dedicated_connection
from store.database import Silence

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

_JOIN = """
INSERT INTO cluster_instances (id, name, lock_key, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING now() AS at
"""
#: Renew this lease and, only if this instance is still a member, remove the members
#: whose lease ran out (their tasks become unowned in the same transaction). Only if
#: a lease that ran out is evidence: this instance's own lease had not run out, the
#: server has been up for a lease, and this instance has reached the database without
#: a break for a lease ($3: since when, NULL if it has just had one; $4: its last
#: renewal, which must be recent, or it had a break it did not see fail). After an
#: outage or a restart every lease ran out, and the others renew theirs in their own
#: time.
_RENEW = """
WITH mine AS (
    SELECT lease_until >= now() AS on_time FROM cluster_instances WHERE id = $1
), renewed AS (
    UPDATE cluster_instances SET lease_until = now() + make_interval(secs => $2)
    WHERE id = $1 RETURNING id
), expired AS (
    DELETE FROM cluster_instances
    WHERE lease_until < now() AND id <> $1 AND EXISTS (SELECT 1 FROM renewed)
      AND (SELECT on_time FROM mine)
      AND now() - pg_postmaster_start_time() > make_interval(secs => $2)
      AND now() - $3::timestamptz >= make_interval(secs => $2)
      AND now() - $4::timestamptz <= make_interval(secs => $2 / 2)
    RETURNING id
)
SELECT (SELECT count(*) FROM renewed) AS renewed, (SELECT count(*) FROM expired) AS expired,
    now() AS at
"""
#: Whether a free lock says nothing of its holder: the server started less than a lease
#: ago (every session lock was let go at once), or this instance has not reached the
#: database without a break for a lease ($2, NULL if it has just had one: an outage
#: ends the others' sessions as well as its own, and they may not have reconnected).
_NO_EVIDENCE = """
SELECT now() - pg_postmaster_start_time() < make_interval(secs => $1)
    OR $2::timestamptz IS NULL OR now() - $2::timestamptz < make_interval(secs => $1)
"""
_LEAVE = "DELETE FROM cluster_instances WHERE id = $1"
_MEMBERS = "SELECT id, lock_key FROM cluster_instances ORDER BY lock_key"
_PRESUMED_DEAD = "DELETE FROM cluster_instances WHERE id = $1 AND lock_key = $2"
_STILL_MEMBER = "SELECT 1 FROM cluster_instances WHERE id = $1"


#: Tries (0.1 s apart) to take this instance's own lock again on a new connection.
_RELOCK_TRIES = 30


class Expelled(Exception):
    """This instance was presumed dead by the others: its tasks are theirs now."""


@dataclass(frozen=True)
class Member:
    id: UUID
    lock_key: int


def _new_key() -> int:
    # A random positive bigint: no coordination needed, and no clash with the fixed
    # keys of retention (a collision is one in 2**62).
    return secrets.randbits(62) | 1


class Membership:
    """This instance's row, lock and lease, and the watch over its successor."""

    def __init__(
        self,
        url: URL | str,
        name: str,
        *,
        lease_seconds: float,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._url = url
        self.name = name
        self.lease_seconds = lease_seconds
        #: Every connection of the membership counts as lost after a lease of silence.
        self._silence = Silence(lease_seconds)
        self._sleep = sleep
        self._connection: asyncpg.Connection | None = None
        self.member: Member | None = None
        #: Set when the members change (a notification, or a tick when polling).
        self._changed = anyio.Event()
        #: The watch's connection while it waits on a lock.
        self._blocked: asyncpg.Connection | None = None
        self._watch_ends = False
        #: The membership connection runs one statement at a time.
        self._using = anyio.Lock()
        #: Since when (the database's clock) this instance has reached the database
        #: without a break; None right after one. The others' leases and locks count as
        #: evidence only a lease after it: in an outage nobody could renew.
        self._steady_since: datetime | None = None
        #: This instance's last renewal (the database's clock).
        self._renewed_at: datetime | None = None

    async def join(self, instance_id: UUID) -> None:
        """Take a new lock, then insert the row: nobody can find it dead in between."""
        async with self._using:
            await self._join(instance_id)

    async def _join(self, instance_id: UUID) -> None:
        await self._drop_connection()
        connection = await dedicated_connection(
            self._url, "membership", self.name, silence=self._silence
        )
        try:
            key = _new_key()
            await connection.execute("SELECT pg_advisory_lock($1)", key)
            at = await connection.fetchval(_JOIN, instance_id, self.name, key, self.lease_seconds)
        except BaseException:
            connection.terminate()
            raise
        self._steady_since = self._renewed_at = at
        self._connection = connection
        self.member = Member(instance_id, key)
        log.info("cluster: joined as %s (%s)", self.name, instance_id)

    async def renew(self) -> int:
        """Renew the lease; how many dead members it removed. Raises Expelled."""
        # One operation at a time on the connection; a renewal slower than the lease
        # is as good as none (TimeoutError: try again).
        async with self._using:
            member = self.member
            if member is None:
                raise Expelled("left")
            try:
                with anyio.fail_after(self.lease_seconds):
                    connection = await self._live_connection(member)
                    row = await connection.fetchrow(
                        _RENEW, member.id, self.lease_seconds, self._steady_since, self._renewed_at
                    )
            except Expelled:
                raise
            except Exception:
                self._lost_touch()
                raise
        if not row["renewed"]:
            raise Expelled(str(member.id))
        self._renewed(row["at"])
        expired: int = row["expired"]
        if expired:
            log.warning("cluster: %d member(s) missed their lease; their tasks are free", expired)
        return expired

    def _lost_touch(self) -> None:
        """A connection of this instance's failed: a break, as far as it can tell."""
        self._steady_since = None

    def _renewed(self, at: datetime) -> None:
        """A renewal went through: a break ends with it, and one is seen late from the
        gap since the last (the renewals come a third of a lease apart)."""
        late = self._renewed_at is None or at - self._renewed_at > timedelta(
            seconds=self.lease_seconds / 2
        )
        if self._steady_since is None or late:
            self._steady_since = at
        self._renewed_at = at

    async def leave(self) -> None:
        """Delete the row (the tasks left are unowned at once), then drop the lock."""
        try:
            with anyio.fail_after(5):
                async with self._using:
                    member, self.member = self.member, None
                    if member is not None and self._connection is not None:
                        await self._connection.execute(_LEAVE, member.id)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("cluster: could not leave cleanly (%s); the others will notice", error)
        finally:
            self.member = None
            await self._drop_connection()

    async def _live_connection(self, member: Member) -> asyncpg.Connection:
        """The membership connection; after a lost one, a new one that takes the lock
        again, if this instance is still a member (else Expelled)."""
        connection = self._connection
        if connection is not None and not connection.is_closed():
            return connection
        await self._drop_connection()
        self._lost_touch()
        connection = await dedicated_connection(
            self._url, "membership", self.name, silence=self._silence
        )
        try:
            # A watcher may hold the lock for a moment (it found it free after a
            # restart, and lets it go once it sees the server is new): only a missing
            # row says this instance was presumed dead.
            for _ in range(_RELOCK_TRIES):
                if await connection.fetchval(_STILL_MEMBER, member.id) is None:
                    raise Expelled(str(member.id))
                if await connection.fetchval("SELECT pg_try_advisory_lock($1)", member.lock_key):
                    break
                await self._sleep(0.1)
            else:
                raise Expelled(str(member.id))
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection
        return connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            with anyio.fail_after(2):
                await connection.close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()

    def retarget(self) -> None:
        """The members changed: the watch looks again at who it should watch.

        A wait on a lock is ended by dropping its connection (a new one is opened at
        once): cancelling the query instead would leave asyncpg's cancel request
        running past the watch.
        """
        self._changed.set()
        blocked = self._blocked
        if blocked is not None:
            blocked.terminate()

    def stop_watching(self) -> None:
        """End the watch's connection (the instance leaves)."""
        self._watch_ends = True
        self.retarget()

    async def watch(self, presumed_dead: Callable[[], None]) -> None:
        """Watch the ring until cancelled; ``presumed_dead`` after each removal."""
        failures = 0
        while not self._watch_ends:
            try:
                connection = await dedicated_connection(
                    self._url,
                    "watch",
                    self.name,
                    silence=self._silence,
                    # A backend waiting on a lock does not read from its client: without
                    # this check, each dropped watch (a change of members) would wait on
                    # as a connection of its own until the lock came free.
                    client_connection_check_interval="500",
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._lost_touch()
                failures += 1
                await self._sleep(min(0.2 * 2**failures, 5.0))
                continue
            try:
                failures = 0
                await self._watching(connection, presumed_dead)
            except Exception as error:  # noqa: BLE001 - the watch must outlive its connection
                # A retarget drops the connection wherever its statement is, and asyncpg
                # then raises what it happens to (even AttributeError between prepare and
                # execute): whatever it is, a new connection follows.
                if not self._changed.is_set():
                    self._lost_touch()
                    log.warning("cluster: the watch connection failed (%s); reconnecting", error)
                    await self._sleep(0.5)
            finally:
                self._blocked = None
                connection.terminate()

    async def _watching(
        self, connection: asyncpg.Connection, presumed_dead: Callable[[], None]
    ) -> None:
        while not self._watch_ends:
            self._changed = anyio.Event()  # before the read: a change from now on is seen
            me = self.member
            members = [Member(r["id"], r["lock_key"]) for r in await connection.fetch(_MEMBERS)]
            others = [m for m in members if me is None or m.id != me.id]
            removed, no_evidence = 0, False
            for other in others:  # a dead one's lock is free: take it, remove it, let go
                if await connection.fetchval("SELECT pg_try_advisory_lock($1)", other.lock_key):
                    if no_evidence := await self._no_evidence(connection, other):
                        break
                    removed += await self._remove(connection, other)
            if no_evidence:
                await self._sleep(self.lease_seconds / 3)  # the others take their locks again
                continue
            if removed:
                presumed_dead()
                continue  # the ring changed
            successor = _successor(me, others)
            if successor is None:  # alone: wait for a change of members
                await self._changed.wait()
                continue
            if self._changed.is_set():
                continue
            # Blocks until the successor's session ends: the server wakes it at once.
            self._blocked = connection
            try:
                await connection.execute("SELECT pg_advisory_lock($1)", successor.lock_key)
            finally:
                self._blocked = None
            if await self._no_evidence(connection, successor):
                await self._sleep(self.lease_seconds / 3)
                continue
            if await self._remove(connection, successor):
                presumed_dead()

    async def _no_evidence(self, connection: asyncpg.Connection, member: Member) -> bool:
        """The lock of ``member`` was free: proof of its death, unless the server has
        just started (every lock was let go then) or this instance has just reached the
        database again (an outage ends the others' sessions too). Then let go of it at
        once: its holder takes it again when it reconnects, and if it does not, its
        lease runs out."""
        steady = self._steady_since
        if not await connection.fetchval(_NO_EVIDENCE, self.lease_seconds, steady):
            return False
        await connection.execute("SELECT pg_advisory_unlock($1)", member.lock_key)
        log.warning(
            "cluster: the database has just started or come back; member %s may yet return",
            member.id,
        )
        return True

    async def _remove(self, connection: asyncpg.Connection, member: Member) -> int:
        try:
            status = await connection.execute(_PRESUMED_DEAD, member.id, member.lock_key)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", member.lock_key)
        removed = int(status.split()[-1])
        if removed:
            log.warning("cluster: member %s is gone (its lock was released)", member.id)
        return removed


def _successor(me: Member | None, others: list[Member]) -> Member | None:
    """The next member after this one in key order, wrapping around."""
    if not others:
        return None
    if me is None:
        return others[0]
    after = [m for m in others if m.lock_key > me.lock_key]
    return after[0] if after else others[0]
