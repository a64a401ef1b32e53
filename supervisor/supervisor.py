"""Supervision: one task group holds one supervised actor per live task.

An actor that crashes is restarted from the journal within the intensity limit; a
journal outage does not count against it. The commands that reach an actor from
outside go through ``supervisor.door``; this module only keeps actors running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from ops import logs, metrics
from speech.base import Pipeline
from supervisor import facts
from supervisor.actor import TaskActor
from supervisor.backoff import Backoff, outage_delay
from supervisor.claims import Claims
from supervisor.config import SupervisorConfig
from supervisor.events import Change
from supervisor.fanout import Fanout
from supervisor.intensity import RestartIntensity
from supervisor.lifecycle import is_terminal
from supervisor.messages import Cancel, CancelOutcome, Command, Message, Stop, Subscribe
from supervisor.ownership import Owned, Ownership
from supervisor.ports import Fenced, Journal, JournalUnavailable, StaleWrite, TaskSnapshot
from supervisor.slots import EngineSlots
from supervisor.transitions import cancelled, failed
from supervisor.worker import RetryPolicy, Sleep

log = logging.getLogger(__name__)


#: Told the task id and whether the task ended, once its supervision here has ended.
EndedListener = Callable[[UUID, bool], None]


class NotAccepting(Exception):
    """The supervisor is shutting down or not running: it takes no new work."""


class Supervisor:
    """Keeps one actor running per owned task until the task ends or is stopped."""

    def __init__(
        self,
        journal: Journal,
        pipeline: Pipeline,
        config: SupervisorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        sleep: Sleep = anyio.sleep,
        claims: Claims | None = None,
    ) -> None:
        self.journal = journal
        #: With a cluster: the tasks this instance holds. Only those get an actor, and
        #: an actor whose task is taken over (its write was fenced) is not restarted.
        #: Recovery is then the cluster's claims, not a scan of every live task.
        self.claims = claims
        #: Called when a task's supervision has ended (``add_ended_listener``).
        self._ended_listeners: list[EndedListener] = []
        self._pipeline = pipeline
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(
            attempts=config.stage_attempts,
            backoff=backoff or Backoff(config.backoff_base, config.backoff_cap),
            timeout=config.stage_timeout,
            sleep=sleep,
        )
        self.slots = EngineSlots(config.capacity)
        self.ownership = Ownership()
        self._group: TaskGroup | None = None
        self._stopping = anyio.Event()
        #: Actor restarts after a crash since the service started (the operator's view).
        self.restarts = 0

    @property
    def accepting(self) -> bool:
        """Whether new tasks may be started (false before start and while shutting down)."""
        return self._group is not None and not self._stopping.is_set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover every live task, serve until ``shutdown()``, then stop all actors."""
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                if self.claims is None:
                    for snapshot in await self.journal.runnable():
                        facts.recovered(snapshot.id, snapshot.status, snapshot.attempt)
                        await self._start(group, snapshot.id, snapshot)
                task_status.started()
                await self._stopping.wait()
                await self._stop_actors()
                group.cancel_scope.cancel()
        finally:
            self._group = None

    def shutdown(self) -> None:
        """Ask ``run`` to stop every actor at a safe point and return."""
        self._stopping.set()

    async def start(self, task_id: UUID, snapshot: TaskSnapshot | None = None) -> None:
        """Give a persisted task its actor (nothing happens if it has one or is being deleted).

        ``snapshot``, when the caller has just written the task and holds it as stored,
        spares the actor's first load; restarts always load from the journal.
        """
        if self._group is None or not self.accepting:
            raise NotAccepting("the service is shutting down")
        await self._start(self._group, task_id, snapshot)

    def add_ended_listener(self, listener: EndedListener) -> None:
        """Call ``listener(task_id, terminal)`` each time a task's supervision here ends;
        ``terminal``: its last actor saw the task end (the cluster lets the claim go,
        and else the live row too)."""
        self._ended_listeners.append(listener)

    def holds(self, task_id: UUID) -> bool:
        """Whether this instance may run the task (always, without a cluster)."""
        return self.claims is None or task_id in self.claims

    async def _start(self, group: TaskGroup, task_id: UUID, snapshot: TaskSnapshot | None) -> None:
        if not self.holds(task_id):
            return  # another instance runs it, or it waits for a claim
        owned = self.ownership.claim(task_id)  # checked and claimed with no await in between
        if owned is not None:
            await group.start(self._supervise, owned, snapshot)

    async def _supervise(
        self, owned: Owned, snapshot: TaskSnapshot | None, *, task_status: TaskStatus[None]
    ) -> None:
        logs.enter_task(owned.task_id)
        task_status.started()
        try:
            await self._restarting(owned, snapshot)
            await self._settle(owned)
        finally:
            _answer_unsettled(owned)
            # No await from the last look at ``pending`` to here: a command told from now
            # on finds the entry ended and goes to the journal itself.
            self.ownership.release(owned)
            owned.ended.set()
            for listener in self._ended_listeners:
                listener(owned.task_id, owned.terminal)

    async def _restarting(self, owned: Owned, snapshot: TaskSnapshot | None) -> None:
        """Run the task's actor; restart it after a crash, within the intensity limit."""
        config = self._config
        intensity = RestartIntensity(config.max_restarts, config.restart_period, self._clock)
        task_id = owned.task_id
        outages = stale = 0
        while not owned.stopping:  # stopped while waiting to restart: no new actor
            try:
                await self._run_actor(owned, snapshot)
                return
            except Exception as error:  # noqa: BLE001 - every crash is ours to handle
                if _raised(error, Fenced) or not self.holds(task_id):
                    # Fenced: another instance took it over (or it was deleted); it
                    # runs there now, and this one writes nothing more for it.
                    if self.claims is not None:
                        self.claims.drop(task_id)
                    log.warning("task %s: taken over by another instance; stopped here", task_id)
                    return
                if self._stopping.is_set() or owned.stopping:
                    # no restart: the next start (or nobody, if it is deleted) resumes it
                    log.warning("task %s: actor crashed while stopping", task_id, exc_info=True)
                    return
                snapshot = None  # the journal is the truth after any exit
                if _only(error, StaleWrite):
                    # The task moved on under the actor: a write whose answer was lost
                    # landed. Not a crash: the next actor starts from what is stored
                    # (at once the first time; again and again, with a growing pause).
                    stale += 1
                    log.warning("task %s: the journal is ahead of its actor; reloading", task_id)
                    if stale > 1:
                        await self._sleep(outage_delay(stale - 1, config.journal_retry_cap))
                    continue
                if _only(error, JournalUnavailable):
                    # The database is away: not the task's fault, so it does not count.
                    outages += 1
                    if outages == 1:
                        facts.journal_outage()
                    delay = outage_delay(outages, config.journal_retry_cap)
                    log.warning("task %s: journal unavailable; retrying in %.2f s", task_id, delay)
                    await self._sleep(delay)
                    continue
                outages = 0
                log.exception("task %s: actor crashed", task_id)
                if not intensity.allow():
                    await self._give_up(owned, error)
                    return
                self.restarts += 1
                facts.restarted(task_id)

    async def _run_actor(self, owned: Owned, snapshot: TaskSnapshot | None) -> None:
        size = self._config.mailbox_size + len(owned.pending)
        send, receive = anyio.create_memory_object_stream[Message](size)
        for command in owned.pending:
            send.send_nowait(command)
        owned.pending.clear()
        fanout = Fanout(self._config.subscriber_buffer)
        actor = TaskActor(
            owned.task_id,
            journal=self.journal,
            pipeline=self._pipeline,
            slots=self.slots,
            policy=self._policy,
            fanout=fanout,
            outage_retry_cap=self._config.journal_retry_cap,
            sleep=self._sleep,
        )
        owned.mailbox = send
        metrics.ACTORS_LIVE.inc()
        try:
            await actor.run(receive, send, snapshot)
            owned.terminal = is_terminal(actor.status)
        finally:
            metrics.ACTORS_LIVE.dec()
            owned.mailbox = None
            send.close()
            if actor.in_flight is not None:
                owned.pending.append(actor.in_flight)
            owned.pending.extend(_unread_commands(receive))
            receive.close()
            fanout.close()

    async def _settle(self, owned: Owned) -> None:
        """Answer what the last actor left unread: the task has ended or has been stopped."""
        while owned.pending:
            match owned.pending.pop(0):
                case Subscribe(reply=reply):
                    reply.set(None)
                case Cancel(reply=reply) if not self.holds(owned.task_id):
                    reply.set(CancelOutcome.MOVED)
                case Cancel(reason=reason, reply=reply):
                    try:
                        reply.set(await self.cancel_offline(owned.task_id, reason))
                    except Exception:  # noqa: BLE001 - the supervisor must outlive it
                        log.exception("task %s: could not record a cancel", owned.task_id)
                        reply.set(CancelOutcome.UNAVAILABLE)
                case Stop():
                    pass

    async def cancel_offline(self, task_id: UUID, reason: str) -> CancelOutcome:
        """Persist ``cancelled`` for a live task that no actor runs.

        ENDED also when an owner took the task meanwhile: the caller asks it instead.
        """
        try:
            written = await self._write_offline(task_id, cancelled(reason))
        except JournalUnavailable:
            return CancelOutcome.UNAVAILABLE
        return CancelOutcome.CANCELLED if written else CancelOutcome.ENDED

    async def _write_offline(
        self, task_id: UUID, change: Change, failure: str | None = None
    ) -> bool:
        """Persist a terminal change for a live task; False when it has ended, is gone,
        or has an actor again (which then writes for it). ``failure``: its class."""
        while True:
            snapshot = await self.journal.load(task_id)
            if snapshot is None or is_terminal(snapshot.status):
                return False
            owned = self.ownership.get(task_id)
            if owned is not None and owned.mailbox is not None:
                return False
            try:
                event = await self.journal.append(task_id, snapshot.seq, change)
            except Fenced:
                return False  # an owner took it meanwhile (or it is gone): ask it instead
            except StaleWrite:
                continue  # it moved meanwhile: look again
            facts.persisted(
                event, previous=snapshot.status, attempt=snapshot.attempt, failure=failure
            )
            return True

    async def _give_up(self, owned: Owned, error: Exception) -> None:
        """Fail the task for good; wait out an outage rather than leave it live unowned."""
        limit = self._config.max_restarts
        log.error(
            "task %s: failed for good after %d restarts", owned.task_id, limit, exc_info=error
        )
        change = failed(f"the task failed unexpectedly {limit + 1} times in a row and was stopped")
        outages = 0
        while not (self._stopping.is_set() or owned.stopping) and self.holds(owned.task_id):
            try:
                await self._write_offline(owned.task_id, change, facts.CRASHED)
                return
            except JournalUnavailable:
                outages += 1
                await self._sleep(outage_delay(outages, self._config.journal_retry_cap))
            except Exception:  # noqa: BLE001 - it stays live: the next start resumes it
                log.exception("task %s: could not record the failure", owned.task_id)
                return

    async def _stop_actors(self) -> None:
        with anyio.move_on_after(self._config.shutdown_grace, shield=True):
            entries = self.ownership.entries()
            for owned in entries:
                owned.stopping = True
                if owned.mailbox is not None:
                    try:
                        owned.mailbox.send_nowait(Stop())
                    except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass  # a full mailbox: the cancellation after the grace period stops it
            for owned in entries:
                await owned.ended.wait()


def _unread_commands(receive: MemoryObjectReceiveStream[Message]) -> list[Command]:
    """Empty an ended actor's mailbox: its commands are kept for whoever answers next;
    its worker's reports are dropped (the next worker starts from the journal)."""
    kept: list[Command] = []
    while True:
        try:
            message = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return kept
        if isinstance(message, Subscribe | Cancel | Stop):
            kept.append(message)


def _answer_unsettled(owned: Owned) -> None:
    """The supervision was cancelled before it could answer everything: say so."""
    for command in owned.pending:
        match command:
            case Subscribe(reply=reply):
                reply.set(None)
            case Cancel(reply=reply):
                reply.set(CancelOutcome.UNAVAILABLE)
            case Stop():
                pass
    owned.pending.clear()


def _only(error: BaseException, kind: type[Exception]) -> bool:
    """Whether ``error`` is ``kind``, or a group of nothing else."""
    if isinstance(error, BaseExceptionGroup):
        return all(_only(inner, kind) for inner in error.exceptions)
    return isinstance(error, kind)


def _raised(error: BaseException, kind: type[Exception]) -> bool:
    """Whether ``error`` is ``kind`` or holds one (in a group)."""
    if isinstance(error, BaseExceptionGroup):
        return any(_raised(inner, kind) for inner in error.exceptions)
    return isinstance(error, kind)
