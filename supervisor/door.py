"""The one door to a task: create, follow, cancel, retry, delete and stop go through here.

Both the native and the ILPS routes use it, and nothing else reaches an actor. It
decides, in one place, whether a command goes to the task's owner (its actor, or the
owner's queue of commands while the actor restarts) or straight to the journal (no
owner here), and it keeps the rule that no actor writes after a task's rows are gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from uuid import UUID

import anyio

from supervisor import facts
from supervisor.lifecycle import RETRYABLE, is_terminal
from supervisor.messages import (
    BY_THE_USER,
    Cancel,
    CancelOutcome,
    Stop,
    Subscribe,
    Subscription,
)
from supervisor.ownership import Unowned
from supervisor.ports import StaleWrite, TaskSnapshot
from supervisor.supervisor import EndedListener, NotAccepting, Supervisor
from supervisor.transitions import requeued

#: The door's own way to cancel a live task that nobody runs (``TaskDoor.cancel_offline``).
OfflineCancel = Callable[[UUID, str], Awaitable[CancelOutcome]]


class Elsewhere(Protocol):
    """The tasks no actor here runs (another instance does, or none yet)."""

    def subscribe(self, task_id: UUID, after: int = 0) -> Subscription:
        """Live events of the task, whoever runs it, for a client at seq ``after``."""
        ...

    async def cancel(self, task_id: UUID, reason: str, offline: OfflineCancel) -> CancelOutcome:
        """Have the task's owner cancel it; MOVED when it turns out to be run here.

        ``offline`` is how the door cancels a task that no instance owns: the only
        write of a cancel that does not go through an actor.
        """
        ...


class Admitted(Protocol):
    """A task as the store has just admitted it."""

    def snapshot(self) -> TaskSnapshot: ...


A = TypeVar("A", bound=Admitted)

#: Times a cancel finds the task claimed here but its actor not yet started.
_MAX_MOVES = 500


class TaskDoor:
    """Every command on a task, over the supervisor that keeps the actors running."""

    def __init__(self, supervisor: Supervisor, elsewhere: Elsewhere | None = None) -> None:
        self._supervisor = supervisor
        self._ownership = supervisor.ownership
        self._journal = supervisor.journal
        #: With a cluster: follow and cancel the tasks run by other instances.
        self.elsewhere = elsewhere

    @property
    def accepting(self) -> bool:
        """Whether new work is taken (false before start and while shutting down)."""
        return self._supervisor.accepting

    def __len__(self) -> int:
        """How many tasks are owned (have an actor, or one restarting) here."""
        return len(self._ownership)

    def owns(self, task_id: UUID) -> bool:
        return task_id in self._ownership

    @property
    def queue_depth(self) -> int:
        """How many tasks wait for an engine slot now."""
        return self._supervisor.slots.waiting

    @property
    def actor_restarts(self) -> int:
        """How many times an actor was restarted after a crash since the service started."""
        return self._supervisor.restarts

    def queue_position(self, task_id: UUID) -> int | None:
        """The task's place in this instance's engine queue now (1 = next, 0 = it holds
        a slot), or None when it has no place here."""
        return self._supervisor.slots.position(task_id)

    async def create(self, admit: Callable[[], Awaitable[tuple[A, bool]]]) -> tuple[A, bool]:
        """Persist a task with ``admit`` and give it its actor.

        Refused (``NotAccepting``) before anything is written while the service stops;
        a task persisted just as it starts to stop runs on the next start.
        """
        if not self.accepting:
            raise NotAccepting("the service is shutting down")
        record, created = await admit()
        snapshot = record.snapshot()
        if created or not is_terminal(snapshot.status):
            await self._start(snapshot.id, snapshot if created else None)
        return record, created

    async def start(self, task_id: UUID, snapshot: TaskSnapshot | None = None) -> None:
        """Give an already persisted task its actor (nothing happens if it has one)."""
        await self._supervisor.start(task_id, snapshot)

    def add_ended_listener(self, listener: EndedListener) -> None:
        """Call ``listener(task_id, terminal)`` each time a task's supervision here ends
        (``terminal``: its last actor saw the task end)."""
        self._supervisor.add_ended_listener(listener)

    async def follow(
        self, task_id: UUID, *, anywhere: bool = False, after: int = 0
    ) -> Subscription | None:
        """Live events after the returned seq; None when nobody here runs the task.

        ``anywhere`` (the task is live): a task run by another instance is followed
        through the cluster instead, from the client's position ``after``.
        """
        owned = self._ownership.get(task_id)
        if owned is not None:
            request = Subscribe()
            try:
                await owned.tell(request)
            except Unowned:
                pass
            else:
                subscription = await request.reply.wait()
                if subscription is not None:
                    return subscription
        if anywhere and self.elsewhere is not None:
            return self.elsewhere.subscribe(task_id, after)
        return None

    async def cancel(self, task_id: UUID, reason: str = BY_THE_USER) -> CancelOutcome:
        """Cancel a live task; the answer comes once ``cancelled`` is persisted (or not)."""
        moves = 0
        while True:
            owned = self._ownership.get(task_id)
            if owned is None and self.elsewhere is not None:
                outcome = await self.elsewhere.cancel(task_id, reason, self.cancel_offline)
                if outcome is not CancelOutcome.MOVED:
                    return outcome
                moves += 1  # claimed here a moment ago: its actor is on its way
                if moves > _MAX_MOVES:
                    return CancelOutcome.UNAVAILABLE
                await anyio.sleep(0.01)
                continue
            if owned is None:
                outcome = await self.cancel_offline(task_id, reason)
                if outcome is CancelOutcome.ENDED and self.owns(task_id):
                    continue  # it was retried meanwhile: its new owner answers
                return outcome
            request = Cancel(reason)
            try:
                await owned.tell(request)
            except Unowned:
                continue  # its supervision ended as we knocked: look again
            outcome = await request.reply.wait()
            if outcome is not CancelOutcome.MOVED:
                return outcome
            # taken over by another instance meanwhile: ask again, there

    async def cancel_offline(self, task_id: UUID, reason: str) -> CancelOutcome:
        """Persist ``cancelled`` for a live task that no actor here runs (nobody in the
        cluster owns it). ENDED also when an owner took it meanwhile: ask that one."""
        return await self._supervisor.cancel_offline(task_id, reason)

    async def retry(self, task_id: UUID) -> bool:
        """Run a failed or cancelled task again; False when it is not such a task (or gone).

        True means the new attempt is persisted: it runs now, or on the next start if
        the service began to stop in between.
        """
        if not self.accepting:
            raise NotAccepting("the service is shutting down")
        snapshot = await self._journal.load(task_id)
        if snapshot is None or snapshot.status not in RETRYABLE:
            return False
        owned = self._ownership.get(task_id)
        if owned is not None:  # it has just persisted its end and is on its way out
            await owned.ended.wait()
        if self.owns(task_id) or self._ownership.closing(task_id):
            return False  # retried (or being deleted) meanwhile
        try:
            await self._journal.append(task_id, snapshot.seq, requeued(snapshot.attempt + 1))
        except StaleWrite:  # a concurrent retry or delete got there first
            return False
        facts.retried(task_id, snapshot.attempt + 1)
        await self._start(task_id, None)
        return True

    async def delete(self, task_id: UUID, remove: Callable[[], Awaitable[bool]]) -> bool:
        """Stop the task's actor (its streams are told), then ``remove`` its rows.

        No owner can be started for the task meanwhile, so nothing writes after the rows
        are gone. Returns what ``remove`` returns (False: it was already gone).
        """
        self._ownership.close(task_id)
        try:
            await self._stop(task_id, Stop(deleted=True))
            return await remove()
        finally:
            self._ownership.reopen(task_id)

    async def stop(self, task_id: UUID, deleted: bool = False) -> None:
        """Stop the task's actor, persisting nothing, and wait until its supervision ended.

        ``deleted``: another instance deleted it; its streams here say so.
        """
        await self._stop(task_id, Stop(deleted=deleted))

    async def _stop(self, task_id: UUID, request: Stop) -> None:
        owned = self._ownership.get(task_id)
        if owned is None:
            return
        owned.stopping = True  # whatever ends the actor now, it is not restarted
        try:
            await owned.tell(request)
        except Unowned:
            return
        await owned.ended.wait()

    async def _start(self, task_id: UUID, snapshot: TaskSnapshot | None) -> None:
        try:
            await self._supervisor.start(task_id, snapshot)
        except NotAccepting:
            pass  # persisted: the next start resumes it
