"""A task actor: the one coroutine that owns a task's lifecycle.

It reads its mailbox in order; every transition is persisted to the journal
first and broadcast to its subscribers second, so a subscriber never sees
an event that a reconnect could not replay.
"""

from __future__ import annotations

import logging
from uuid import UUID

import anyio
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream

from speech.base import NormalisedAudio, Pipeline
from supervisor import facts
from supervisor.backoff import outage_delay
from supervisor.events import Change, Event, EventType, QueuePosition
from supervisor.fanout import Fanout
from supervisor.lifecycle import Status, check_transition, is_terminal
from supervisor.messages import (
    Cancel,
    CancelOutcome,
    Command,
    Journalled,
    Message,
    Queued,
    RetryScheduled,
    SlotGranted,
    StageEntered,
    StageFailed,
    StageProgress,
    StageSucceeded,
    Stop,
    Subscribe,
    Subscription,
)
from supervisor.ports import Journal, JournalUnavailable, TaskSnapshot
from supervisor.slots import EngineSlots
from supervisor.transitions import cancelled, change_for
from supervisor.worker import RetryPolicy, Sleep, Worker

log = logging.getLogger(__name__)


class TaskActor:
    """Owns one task from its persisted state until it is terminal or told to stop."""

    def __init__(
        self,
        task_id: UUID,
        *,
        journal: Journal,
        pipeline: Pipeline,
        slots: EngineSlots,
        policy: RetryPolicy,
        fanout: Fanout,
        outage_retry_cap: float = 5.0,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.task_id = task_id
        self._journal = journal
        self._pipeline = pipeline
        self._slots = slots
        self._policy = policy
        self._fanout = fanout
        self._outage_retry_cap = outage_retry_cap
        self._sleep = sleep
        self._status = Status.CREATED
        self._seq = 0
        self._attempt = 1
        #: When the current status was entered (or this actor took the task over).
        self._since = 0.0
        #: The command being carried out; if the actor crashes, its successor gets it.
        self.in_flight: Command | None = None

    @property
    def status(self) -> Status:
        """The task's status as this actor last persisted (or loaded) it."""
        return self._status

    async def run(
        self,
        mailbox: ObjectReceiveStream[Message],
        address: MemoryObjectSendStream[Message],
        snapshot: TaskSnapshot | None = None,
    ) -> None:
        """Serve the mailbox until the task is terminal, cancelled, stopped or deleted.

        ``address`` is the mailbox's send end; the worker posts through a clone of it.
        ``snapshot`` is the task as just persisted, if the caller has it; else it is loaded.
        """
        snapshot = snapshot or await self._journal.load(self.task_id)
        if snapshot is None or is_terminal(snapshot.status):
            if snapshot is not None:
                self._status = snapshot.status
            return
        self._status, self._seq, self._attempt = snapshot.status, snapshot.seq, snapshot.attempt
        self._since = anyio.current_time()
        evaluates = self._pipeline.evaluator.applies(snapshot.reference_text, snapshot.text_id)
        async with anyio.create_task_group() as group:
            work = anyio.CancelScope()
            group.start_soon(self._work, work, snapshot, evaluates, address.clone())
            try:
                await self._serve(mailbox, evaluates)
            finally:
                work.cancel()

    async def _work(
        self,
        scope: anyio.CancelScope,
        snapshot: TaskSnapshot,
        evaluates: bool,
        outbox: MemoryObjectSendStream[Message],
    ) -> None:
        with scope:
            async with outbox:
                worker = Worker(
                    snapshot,
                    journal=self._journal,
                    pipeline=self._pipeline,
                    slots=self._slots,
                    policy=self._policy,
                    evaluates=evaluates,
                    post=outbox.send,
                    on_move=self._queue_moved,
                )
                await worker.run()

    async def _serve(self, mailbox: ObjectReceiveStream[Message], evaluates: bool) -> None:
        async for message in mailbox:
            match message:
                case Subscribe(reply=reply):
                    # A newcomer to a waiting task hears where it stands now, after the
                    # journal's (older) "queued" event that its replay ends with.
                    first = self._waiting_at()
                    events = self._fanout.add(first)
                    reply.set(Subscription(self._seq, events, self._fanout))
                case Journalled(reply=reply):
                    reply.set(None)  # every report before it is persisted
                case Stop(deleted=deleted):
                    if deleted:
                        self._fanout.close(deleted=True)
                    return
                case Cancel(reason=reason, reply=reply):
                    self.in_flight = message
                    await self._persist(cancelled(reason))
                    self.in_flight = None
                    reply.set(CancelOutcome.CANCELLED)
                case StageFailed(failure=failure):
                    change = change_for(message, self._status, evaluates=evaluates)
                    await self._persist(change, failure=failure)
                case Queued():
                    # The place now, not the one the worker saw when it joined.
                    now = self._slots.position(self.task_id)
                    queued = message if now is None else Queued(now)
                    await self._persist(change_for(queued, self._status, evaluates=evaluates))
                    moved = self._waiting_at()
                    if moved is not None and moved.position != queued.position:
                        self._fanout.publish(moved)  # the line moved while it was written
                case SlotGranted() | StageEntered() | StageProgress() | RetryScheduled():
                    await self._persist(change_for(message, self._status, evaluates=evaluates))
                case StageSucceeded(output=output, fresh=fresh):
                    keep = output if fresh and isinstance(output, NormalisedAudio) else None
                    change = change_for(message, self._status, evaluates=evaluates)
                    await self._persist(change, keep)
            if is_terminal(self._status):
                return

    def _waiting_at(self) -> QueuePosition | None:
        """Where the task stands in the engine queue, while it is ``queued`` and waits
        there (once its turn has come, its next status says so)."""
        position = self._slots.position(self.task_id)
        if self._status is not Status.QUEUED or not position:
            return None
        return QueuePosition(self.task_id, position)

    def _queue_moved(self, position: int) -> None:
        """The line moved: tell the subscribers, once ``queued`` is journalled (before,
        the "queued" event itself carries the place)."""
        if self._status is Status.QUEUED and len(self._fanout):  # nobody listening: no news
            self._fanout.publish(QueuePosition(self.task_id, position))

    async def _persist(
        self,
        change: Change,
        normalised: NormalisedAudio | None = None,
        *,
        failure: str | None = None,
    ) -> None:
        """Journal first, then broadcast: what a subscriber sees can always be replayed."""
        previous = self._status
        if change.status is not previous:
            check_transition(previous, change.status)
        event = await self._append(change, normalised)
        self._status, self._seq = event.status, event.seq
        self._fanout.publish(event)
        if event.status is not previous:
            now = anyio.current_time()
            seconds, self._since = now - self._since, now
            facts.persisted(
                event, previous=previous, attempt=self._attempt, seconds=seconds, failure=failure
            )
        elif event.type is EventType.RETRY:
            facts.persisted(event, previous=previous, attempt=self._attempt)

    async def _append(self, change: Change, normalised: NormalisedAudio | None) -> Event:
        """Journal the change; while the database is away (or every connection busy),
        wait and try again, keeping the mailbox and the subscribers' streams open.

        Nothing was written when ``JournalUnavailable`` is raised. If a write did land
        but its answer was lost, the next try is a ``StaleWrite`` (the seq moved on,
        not the owner): the supervisor starts the next actor from the journal, which
        holds that write.
        """
        outages = 0
        while True:
            try:
                return await self._journal.append(self.task_id, self._seq, change, normalised)
            except JournalUnavailable:
                outages += 1
                if outages == 1:
                    facts.journal_outage()
                delay = outage_delay(outages, self._outage_retry_cap)
                if outages == 1 or delay == self._outage_retry_cap:
                    log.warning("task %s: journal unavailable; retrying", self.task_id)
                await self._sleep(delay)
