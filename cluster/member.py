"""This instance as a member of the cluster: it joins, claims, hears and hands over.

Everything the cluster needs runs in one task group: the lease renewal, the watch
over the next member, the listener, the hub, the claimer and the commands from other
instances (cancels and deletions of the tasks run here).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import anyio
import asyncpg
from anyio.abc import TaskGroup, TaskStatus
from sqlalchemy import URL

from cluster.claim_wakes import ClaimWakes
from cluster.hub import EventHub
from cluster.listener import EventsMode, Listener
from cluster.membership import Expelled, Membership
from store.cluster import ClusterStore
from store.database import Silence
from supervisor import facts
from supervisor.claims import Claims
from supervisor.door import TaskDoor
from supervisor.messages import CancelOutcome
from supervisor.ports import JournalUnavailable
from supervisor.supervisor import NotAccepting

log = logging.getLogger(__name__)

#: How many tasks one claim statement takes at most (it keeps taking while it has
#: room): short statements, and row locks held only briefly.
CLAIM_BATCH = 32


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    lease_seconds: float = 10.0
    poll: bool = False
    poll_seconds: float = 1.0


class ClusterMember:
    """The cluster's machinery for one instance, around its door."""

    def __init__(
        self,
        url: URL | str,
        config: ClusterConfig,
        membership: Membership,
        store: ClusterStore,
        claims: Claims,
        door: TaskDoor,
        hub: EventHub,
    ) -> None:
        self.config = config
        self._membership = membership
        self._store = store
        self.claims = claims
        self._door = door
        self.hub = hub
        self.listener = Listener(
            url,
            {
                "stm_events": self._on_event,
                "stm_deleted": self._on_deleted,
                "stm_claimable": lambda _: self.wake_claimer(unowned=True),
                "stm_cancel": self._on_cancel,
                "stm_members": lambda _: self._membership.retarget(),
            },
            self._tick,
            poll=config.poll,
            poll_seconds=config.poll_seconds,
            instance=config.name,
            silence=Silence(config.lease_seconds),
        )
        #: One claim round per burst of wakes, none without room (cluster/claim_wakes.py).
        self.claim_wakes = ClaimWakes(claims)
        self._group: TaskGroup | None = None
        self._scope = anyio.CancelScope()
        #: The members as the last tick saw them: the watch looks again when they change.
        self._members_seen = ""
        self._leaving = False
        self._rejoining = anyio.Lock()
        door.add_ended_listener(self._ended)

    @property
    def instance_id(self) -> UUID:
        return self.claims.instance_id

    @property
    def events_mode(self) -> EventsMode:
        return self.listener.mode

    async def unowned_position(self, task_id: UUID) -> int | None:
        """The place of an unowned task in the cluster's queue; None once it is owned."""
        try:
            return await self._store.unowned_position(task_id)
        except JournalUnavailable:
            return None

    def wake_claimer(self, *, unowned: bool = False) -> None:
        """Claim if there may be unowned tasks (``unowned``: there are, or may be)."""
        self.claim_wakes.wake(unowned=unowned)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the cluster's loops until ``leave``; started once the first claim is asked."""
        with self._scope:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self.hub.run)
                group.start_soon(self.listener.run)
                group.start_soon(self._membership.watch, self._someone_died)
                group.start_soon(self._renewing)
                group.start_soon(self._claiming)
                group.start_soon(self._sweeping)
                self.wake_claimer(unowned=True)
                task_status.started()
                await anyio.sleep_forever()

    def _someone_died(self) -> None:
        self.wake_claimer(unowned=True)

    async def leave(self) -> None:
        """Graceful handover (the actors have stopped): the others claim at once."""
        self._leaving = True
        self.hub.close()
        self._membership.stop_watching()
        with anyio.CancelScope(shield=True):
            await self._membership.leave()
        self._scope.cancel()

    # -- claims ---------------------------------------------------------------

    async def _claiming(self) -> None:
        while True:
            await self.claim_wakes.next_round()
            expelled = self.instance_id
            try:
                await self._claim_while_room()
            except Expelled:
                await self._rejoin(expelled)
            except Exception as error:  # noqa: BLE001 - the claimer must outlive any one claim
                if not isinstance(error, JournalUnavailable):
                    log.exception("cluster: a claim failed; trying again")
                await anyio.sleep(0.5)
                self.wake_claimer(unowned=True)

    async def _claim_while_room(self) -> None:
        while self.claims.room and self._door.accepting and not self._leaving:
            asked = min(self.claims.room, CLAIM_BATCH)
            # Cleared before the claim: a notification during it sets it again.
            self.claim_wakes.maybe_unowned = False
            try:
                claimed = await self._store.claim(self.instance_id, asked)
            except asyncpg.ForeignKeyViolationError:
                raise Expelled(str(self.instance_id)) from None
            except BaseException:
                self.claim_wakes.maybe_unowned = True
                raise
            for task in claimed:
                snapshot = task.snapshot
                self.claims.hold(snapshot.id, task.generation)
                if snapshot.seq > 1:  # it had run somewhere: resumed, not merely started
                    facts.recovered(snapshot.id, snapshot.status, snapshot.attempt)
                try:
                    await self._door.start(snapshot.id, snapshot)
                except NotAccepting:
                    return  # stopping: leaving hands it on
                if task.cancel_reason is not None:
                    self._soon(self._cancel_here, snapshot.id, task.cancel_reason)
            if len(claimed) < asked:
                return
            self.claim_wakes.maybe_unowned = True  # a full batch: there may be more

    def _ended(self, task_id: UUID, terminal: bool) -> None:
        """A supervision ended here: its claim goes. Unless the task was seen to end,
        its live row goes back to the queue for anyone, if it still names this
        instance (the actor crashed while stopping, a write's answer was lost...):
        else nobody would ever claim it."""
        fence = self.claims.fence(task_id)
        self.claims.drop(task_id)
        # Stopping: leaving hands every live row over at once.
        if fence is not None and not terminal and not self._leaving and self._door.accepting:
            self._soon(self._release, task_id, fence.owner, fence.generation)
        self.wake_claimer()

    async def _release(self, task_id: UUID, owner: UUID, generation: int) -> None:
        """Hand a task back to the queue, waiting out an outage (else nobody runs it)."""
        outages = 0
        while True:
            try:
                await self._store.release(task_id, owner, generation)
                return
            except JournalUnavailable:
                outages += 1
                await anyio.sleep(min(0.2 * 2**outages, 5.0))

    # -- membership -----------------------------------------------------------

    async def _renewing(self) -> None:
        interval = self.config.lease_seconds / 3
        outages = 0
        while True:
            await anyio.sleep(interval)
            expelled = self.instance_id
            try:
                if await self._membership.renew():
                    self.wake_claimer(unowned=True)
                outages = 0
            except Expelled:
                if self._leaving:
                    return
                await self._rejoin(expelled)
            except Exception as error:  # noqa: BLE001 - an outage, or worse: try again
                outages += 1
                if outages == 1:
                    log.warning("cluster: cannot renew the lease (%s); retrying", error)

    async def _rejoin(self, expelled: UUID) -> None:
        """Presumed dead while alive (paused, cut off): give every task up, join anew.

        Once: the claimer and the renewal can both find out, and the second to come
        finds the instance under a new identity already (``expelled`` is the one that
        was found out)."""
        async with self._rejoining:
            if self._leaving or self.instance_id != expelled:
                return
            await self._rejoin_now()

    async def _rejoin_now(self) -> None:
        lost = self.claims.clear(uuid.uuid4())
        log.error(
            "cluster: this instance was presumed dead; its %d task(s) run elsewhere now;"
            " joining again as %s",
            len(lost),
            self.instance_id,
        )
        async with anyio.create_task_group() as group:
            for task_id in lost:
                group.start_soon(self._door.stop, task_id)
        while not self._leaving:
            try:
                await self._membership.join(self.instance_id)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("cluster: cannot join again (%s); retrying", error)
                await anyio.sleep(1.0)
        self.wake_claimer(unowned=True)

    # -- notifications --------------------------------------------------------

    def _on_event(self, payload: str) -> None:
        task, _, seq = payload.partition(":")
        try:
            self.hub.notified(UUID(task), int(seq))
        except ValueError:
            log.warning("cluster: a malformed event notification (%r)", payload[:80])

    def _on_deleted(self, payload: str) -> None:
        try:
            task_id = UUID(payload)
        except ValueError:
            return
        self.hub.deleted(task_id)
        if self._door.owns(task_id):
            self._soon(self._door.stop, task_id, True)  # its streams say "deleted"

    def _on_cancel(self, payload: str) -> None:
        owner, _, _task = payload.partition(":")
        if owner == str(self.instance_id):
            self._soon(self._carry_pending_cancels)

    async def _sweeping(self) -> None:
        """Once a lease: pick up the cancels recorded for this instance, whatever the
        notifications said (a notification can be lost with the connection that was to
        hear it; in polling mode each tick does this), and hand back orphans."""
        while True:
            await anyio.sleep(self.config.lease_seconds)
            if self.listener.mode is EventsMode.LISTEN:
                await self._carry_pending_cancels()
            await self._release_orphans()

    async def _release_orphans(self) -> None:
        """Hand back the live tasks the database says are this instance's but that it
        does not hold: a write that named it (an admission, a claim) landed and its
        answer was lost, and nobody else would ever run them."""
        try:
            released = await self._store.release_orphans(
                self.instance_id, self.claims.held(), self.config.lease_seconds
            )
        except JournalUnavailable:
            return
        if released:
            log.warning("cluster: %d task(s) named this instance without its knowing", released)
            self.wake_claimer(unowned=True)

    async def _carry_pending_cancels(self) -> None:
        try:
            pending = await self._store.pending_cancels(self.instance_id)
        except JournalUnavailable:
            return  # the next tick (or reconnection) looks again
        for task_id, reason in pending:
            if self._door.owns(task_id):
                await self._cancel_here(task_id, reason)

    async def _cancel_here(self, task_id: UUID, reason: str) -> None:
        outcome = await self._door.cancel(task_id, reason)
        if outcome is CancelOutcome.UNAVAILABLE:
            log.warning("task %s: a cancel from another instance waits for the journal", task_id)

    async def _tick(self) -> None:
        """Catch up on what notifications would have said (polling, or reconnected)."""
        members = await self._store.members_signature()
        if members != self._members_seen:
            self._members_seen = members
            self._membership.retarget()
        await self.hub.catch_up()
        await self._carry_pending_cancels()
        self.wake_claimer(unowned=True)

    def _soon(self, function: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
        """Run ``function`` in the member's task group (it ends with the member)."""
        if self._group is not None:
            self._group.start_soon(function, *args)
