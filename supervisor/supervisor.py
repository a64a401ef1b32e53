"""The supervisor: owns every actor, restarts crashed ones, stops them on shutdown."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from speech.base import Pipeline
from supervisor.actor import TaskActor
from supervisor.backoff import Backoff, outage_delay
from supervisor.config import SupervisorConfig
from supervisor.events import Change
from supervisor.fanout import Fanout
from supervisor.intensity import RestartIntensity
from supervisor.latch import Latch
from supervisor.lifecycle import RETRYABLE, is_terminal
from supervisor.messages import Cancel, Message, Stop, Subscribe, Subscription
from supervisor.ports import Journal, JournalUnavailable, StaleWrite, TaskSnapshot
from supervisor.registry import ActorHandle, Registry
from supervisor.slots import EngineSlots
from supervisor.transitions import cancelled, failed, requeued
from supervisor.worker import RetryPolicy

log = logging.getLogger(__name__)


class NotAccepting(Exception):
    """The supervisor is shutting down or not running: it takes no new work."""


class Supervisor:
    """One task group holds one supervised actor per live task."""

    def __init__(
        self,
        journal: Journal,
        pipeline: Pipeline,
        config: SupervisorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ) -> None:
        self._journal = journal
        self._pipeline = pipeline
        self._config = config
        self._clock = clock
        self._policy = RetryPolicy(
            attempts=config.stage_attempts,
            backoff=backoff or Backoff(config.backoff_base, config.backoff_cap),
            timeout=config.stage_timeout,
        )
        self.slots = EngineSlots(config.capacity)
        self.registry = Registry()
        #: Tasks with a ``_supervise`` running (also between two runs of their actor),
        #: each with an event set when it ends.
        self._supervised: dict[UUID, Latch] = {}
        self._group: TaskGroup | None = None
        self._stopping = anyio.Event()

    @property
    def accepting(self) -> bool:
        """Whether new tasks may be spawned (false before start and while shutting down)."""
        return self._group is not None and not self._stopping.is_set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover every live task, serve until ``shutdown()``, then stop all actors."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for snapshot in await self._journal.runnable():
                    await group.start(self._supervise, snapshot.id, snapshot)
                task_status.started()
                await self._stopping.wait()
                await self._stop_actors()
                group.cancel_scope.cancel()
        finally:
            self._group = None

    def shutdown(self) -> None:
        """Ask ``run`` to stop every actor at a safe point and return."""
        self._stopping.set()

    async def spawn(self, task_id: UUID, snapshot: TaskSnapshot | None = None) -> None:
        """Give a persisted task its actor (nothing happens if it has one).

        ``snapshot``, when the caller has just written the task and holds it as stored,
        spares the actor's first load; restarts always load from the journal.
        """
        if self._group is None or not self.accepting:
            raise NotAccepting("the service is shutting down")
        if task_id not in self._supervised:
            await self._group.start(self._supervise, task_id, snapshot)

    async def subscribe(self, task_id: UUID) -> Subscription | None:
        """Live events after the returned seq; None when no actor runs the task."""
        request = Subscribe()
        if not await self._tell(task_id, request):
            return None
        return await request.reply.wait()

    async def cancel(self, task_id: UUID, reason: str = "cancelled by the user") -> bool:
        """Cancel a live task. False when it is already terminal or gone."""
        snapshot = await self._journal.load(task_id)
        if snapshot is None or is_terminal(snapshot.status):
            return False  # its actor may still be registered for a moment: don't tell it
        for _ in range(3):
            if await self._tell(task_id, Cancel(reason)):
                return True
            try:
                return await self._record_offline(task_id, cancelled(reason))
            except StaleWrite:
                continue  # an actor came back meanwhile: tell it instead
        return False

    async def retry(self, task_id: UUID) -> bool:
        """Run a failed or cancelled task again. False when it is not in such a state."""
        if self._group is None or not self.accepting:
            raise NotAccepting("the service is shutting down")
        snapshot = await self._journal.load(task_id)
        if snapshot is None or snapshot.status not in RETRYABLE:
            return False
        ending = self._supervised.get(task_id)
        if ending is not None:  # it has just persisted its end and is on its way out
            await ending.wait()
        if task_id in self._supervised:  # somebody retried it meanwhile
            return False
        try:
            await self._journal.append(task_id, snapshot.seq, requeued(snapshot.attempt + 1))
        except StaleWrite:  # a concurrent retry (or delete) got there first
            return False
        await self.spawn(task_id)
        return True

    async def stop(self, task_id: UUID) -> None:
        """Stop a task's actor, persisting nothing, and wait until it has ended."""
        handle = self.registry.get(task_id)
        if handle is not None:
            await self._tell(task_id, Stop())
            await handle.ended.wait()

    async def _tell(self, task_id: UUID, message: Message) -> bool:
        handle = self.registry.get(task_id)
        if handle is None:
            return False
        try:
            await handle.mailbox.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def _record_offline(self, task_id: UUID, change: Change) -> bool:
        """Persist a terminal change for a live task that has no actor here."""
        snapshot = await self._journal.load(task_id)
        if snapshot is None or is_terminal(snapshot.status) or task_id in self.registry:
            return False
        await self._journal.append(task_id, snapshot.seq, change)
        return True

    async def _supervise(
        self,
        task_id: UUID,
        snapshot: TaskSnapshot | None = None,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        """Run the task's actor, unless a concurrent spawn already does."""
        if task_id in self._supervised:  # checked and claimed with no await in between
            task_status.started()
            return
        ended = self._supervised[task_id] = Latch()
        task_status.started()
        try:
            await self._restarting(task_id, snapshot)
        finally:
            del self._supervised[task_id]
            ended.set()

    async def _restarting(self, task_id: UUID, snapshot: TaskSnapshot | None) -> None:
        """Run the task's actor; restart it after a crash, within the intensity limit."""
        config = self._config
        intensity = RestartIntensity(config.max_restarts, config.restart_period, self._clock)
        outages = 0
        # Requests a crashed actor left unread; the next actor gets them.
        carried: list[Message] = []
        while True:
            try:
                await self._run_actor(task_id, carried, snapshot)
                return
            except Exception as error:  # noqa: BLE001 - every crash is ours to handle
                if self._stopping.is_set():  # no restart while stopping: the next start resumes it
                    log.warning("task %s: actor crashed while stopping", task_id, exc_info=True)
                    return
                if _only_unavailable(error):
                    # The database is away: not the task's fault, so it does not count.
                    outages += 1
                    delay = outage_delay(outages, config.journal_retry_cap)
                    log.warning("task %s: journal unavailable; retrying in %.2f s", task_id, delay)
                    await anyio.sleep(delay)
                    continue
                outages = 0
                snapshot = None  # the journal is the truth after a crash
                log.exception("task %s: actor crashed", task_id)
                if not intensity.allow():
                    await self._give_up(task_id, error)
                    return

    async def _run_actor(
        self, task_id: UUID, carried: list[Message], snapshot: TaskSnapshot | None
    ) -> None:
        send, receive = anyio.create_memory_object_stream[Message](self._config.mailbox_size)
        for message in carried:
            send.send_nowait(message)
        carried.clear()
        handle = ActorHandle(task_id, send)
        fanout = Fanout(self._config.subscriber_buffer)
        actor = TaskActor(
            task_id,
            journal=self._journal,
            pipeline=self._pipeline,
            slots=self.slots,
            policy=self._policy,
            fanout=fanout,
            outage_retry_cap=self._config.journal_retry_cap,
        )
        try:
            self.registry.register(handle)
            await actor.run(receive, send, snapshot)
        finally:
            self.registry.unregister(handle)
            send.close()
            carried.extend(_turn_away(receive))
            receive.close()
            fanout.close()
            handle.ended.set()

    async def _give_up(self, task_id: UUID, error: Exception) -> None:
        limit = self._config.max_restarts
        reason = f"the task crashed more than {limit} times; last error: {_describe(error)}"
        try:
            await self._record_offline(task_id, failed(reason))
        except Exception:  # noqa: BLE001 - it stays live in the journal: the next start resumes it
            log.exception("task %s: could not record the failure", task_id)

    async def _stop_actors(self) -> None:
        with anyio.move_on_after(self._config.shutdown_grace, shield=True):
            handles = self.registry.handles()
            for handle in handles:
                try:
                    handle.mailbox.send_nowait(Stop())
                except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # a full mailbox: the cancellation after the grace period stops it
            for handle in handles:
                await handle.ended.wait()


def _turn_away(receive: MemoryObjectReceiveStream[Message]) -> list[Message]:
    """Empty a dead actor's mailbox: subscribers learn it has gone; cancels are kept.

    A cancel that was accepted must not be lost to a crash: the restarted actor
    (or nobody, if the task has ended) receives it.
    """
    kept: list[Message] = []
    while True:
        try:
            message = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return kept
        if isinstance(message, Subscribe):
            message.reply.set(None)
        elif isinstance(message, Cancel):
            kept.append(message)


def _only_unavailable(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_only_unavailable(inner) for inner in error.exceptions)
    return isinstance(error, JournalUnavailable)


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
