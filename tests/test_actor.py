"""One task actor and its worker, driven directly through the mailbox."""

from __future__ import annotations

import random
from uuid import UUID

import anyio
import pytest

from speech.base import NormalisedAudio, TransientStageError
from supervisor.actor import TaskActor
from supervisor.backoff import Backoff
from supervisor.events import Change, EventType
from supervisor.fanout import Fanout
from supervisor.lifecycle import Stage, Status
from supervisor.messages import Cancel, Message, Queued, Stop, Subscribe, Subscription
from supervisor.slots import EngineSlots
from supervisor.transitions import change_for, requeued
from supervisor.worker import RetryPolicy
from tests.fakes import (
    Block,
    Engine,
    MemoryJournal,
    anyio_backend,  # noqa: F401
    assert_valid_history,
    drain,
)

pytestmark = pytest.mark.anyio
S = Status
LIMIT = 5
FAST = RetryPolicy(attempts=3, backoff=Backoff(base=0.0), timeout=10.0)


class Harness:
    """A TaskActor with its mailbox, fan-out and slots, as the supervisor would wire it."""

    def __init__(
        self, journal: MemoryJournal, engine: Engine, task: UUID, policy: RetryPolicy = FAST
    ) -> None:
        self.send, self._receive = anyio.create_memory_object_stream[Message](16)
        self.fanout = Fanout(64)
        self.slots = EngineSlots(1)
        self.actor = TaskActor(
            task,
            journal=journal,
            pipeline=engine.pipeline,
            slots=self.slots,
            policy=policy,
            fanout=self.fanout,
        )
        self.ended = anyio.Event()

    async def run(self) -> None:
        try:
            with self.send, self._receive:
                await self.actor.run(self._receive, self.send)
        finally:
            self.fanout.close()
            self.ended.set()

    async def subscribe(self) -> Subscription:
        request = Subscribe()
        await self.send.send(request)
        subscription = await request.reply.wait()
        assert subscription is not None
        return subscription


async def persist(journal: MemoryJournal, task: UUID, *statuses: Status, **fields: object) -> None:
    for status in statuses:
        seq = len(journal.events(task))
        await journal.append(task, seq, Change(EventType.STATUS, status, {}, dict(fields)))


async def test_retries_wait_the_backoff_delay_that_their_event_announces() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    engine.plan("transcribe", b"t", TransientStageError("a"), TransientStageError("b"))
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    policy = RetryPolicy(3, Backoff(base=1.0, cap=30.0, rng=random.Random(3)), 10.0, sleep)
    harness = Harness(journal, engine, task, policy)
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.run)
            await harness.ended.wait()

    expected = Backoff(base=1.0, cap=30.0, rng=random.Random(3))
    assert slept == [expected.delay(1), expected.delay(2)]
    assert 0.5 <= slept[0] <= 1.0
    assert 1.0 <= slept[1] <= 2.0
    retries = [e.payload for e in journal.events(task) if e.type is EventType.RETRY]
    assert retries == [
        {"stage": "transcribing", "attempt": 1, "error": "a", "delay": slept[0]},
        {"stage": "transcribing", "attempt": 2, "error": "b", "delay": slept[1]},
    ]
    assert journal.status(task) is S.COMPLETED
    assert_valid_history(journal.events(task))


async def test_subscribe_answers_with_the_last_persisted_seq() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    harness = Harness(journal, engine, task)
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.run)
            await hold.entered.wait()
            subscription = await harness.subscribe()
            assert subscription.seq == len(journal.events(task)) == 5
            hold.release.set()
            live = await drain(subscription)
    assert [e.seq for e in live] == [6]
    assert live[0].status is S.COMPLETED


async def test_stop_ends_the_actor_and_its_work_without_writing() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    harness = Harness(journal, engine, task)
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.run)
            await hold.entered.wait()
            subscription = await harness.subscribe()
            await harness.send.send(Stop())
            assert await drain(subscription) == []
            await harness.ended.wait()
    assert journal.status(task) is S.PREPROCESSING
    assert len(journal.events(task)) == subscription.seq == 4
    assert engine.running == 0
    assert harness.slots.waiting == 0
    assert harness.slots.enqueue().granted  # the slot was given back


async def test_cancel_while_waiting_for_a_slot() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    harness = Harness(journal, engine, task)
    holder = harness.slots.enqueue()  # somebody else has the only slot
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.run)
            subscription = await harness.subscribe()
            await harness.send.send(Cancel("changed my mind"))
            live = await drain(subscription)
    assert [(e.status, e.payload) for e in live] == [
        (S.QUEUED, {"position": 1}),
        (S.CANCELLED, {"reason": "changed my mind"}),
    ]
    assert journal.tasks[task].fields["failure_reason"] == "changed my mind"
    assert harness.slots.waiting == 0
    holder.release()
    assert engine.calls == []


@pytest.mark.parametrize("state", ["missing", "completed", "failed"])
async def test_an_actor_for_a_finished_or_missing_task_returns_at_once(state: str) -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    if state == "missing":
        journal.delete(task)
    else:
        await persist(journal, task, Status(state))
    harness = Harness(journal, engine, task)
    with anyio.fail_after(LIMIT):
        await harness.run()
    assert engine.calls == []


async def test_an_unexpected_error_propagates_to_the_supervisor() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    engine.plan("preprocess", b"t", RuntimeError("bug"))
    harness = Harness(journal, engine, task)
    caught: list[BaseException] = []
    with anyio.fail_after(LIMIT):
        try:
            await harness.run()
        except* RuntimeError as group:
            caught.extend(group.exceptions)
    assert [str(e) for e in caught] == ["bug"]
    assert journal.status(task) is not S.FAILED  # failing it is the supervisor's decision


async def test_resuming_at_evaluating_uses_the_persisted_transcription() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t", reference_text="hello")
    await persist(journal, task, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING)
    await persist(
        journal,
        task,
        S.EVALUATING,
        transcript="heard",
        words=[{"text": "heard", "start": 0.0, "end": 1.0, "confidence": 1.0}],
        phonemes=[],
    )
    with anyio.fail_after(LIMIT):
        await Harness(journal, engine, task).run()
    assert engine.calls == [("evaluate", b"heard")]
    assert journal.statuses(task)[-2:] == [S.EVALUATING, S.COMPLETED]
    assert journal.tasks[task].fields["accuracy"] == 87.5


async def test_evaluating_without_a_transcription_fails_for_good() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t", reference_text="hello")
    await persist(journal, task, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING)
    await persist(journal, task, S.EVALUATING)
    with anyio.fail_after(LIMIT):
        await Harness(journal, engine, task).run()
    assert journal.status(task) is S.FAILED
    assert journal.tasks[task].fields["failure_reason"] == "no transcription to evaluate"
    assert engine.calls == []


async def test_lost_decoded_audio_is_decoded_again_when_resuming_at_transcribing() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    await persist(journal, task, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING)
    assert journal.tasks[task].normalised is None
    with anyio.fail_after(LIMIT):
        await Harness(journal, engine, task).run()
    assert engine.calls == [("preprocess", b"t"), ("transcribe", b"t")]
    assert journal.status(task) is S.COMPLETED
    assert_valid_history(journal.events(task))


async def test_kept_decoded_audio_is_reused_and_not_written_again() -> None:
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    kept = NormalisedAudio(b"t", 2.0)
    journal.tasks[task].normalised = kept
    with anyio.fail_after(LIMIT):
        await Harness(journal, engine, task).run()
    assert engine.calls == [("transcribe", b"t")]
    assert journal.tasks[task].normalised is kept
    # the transcribing transition still reports the duration of the kept audio
    assert journal.events(task)[4].payload == {"stage": "preprocessing", "duration": 2.0}


def test_transitions_map_reports_to_changes() -> None:
    queued = change_for(Queued(2), S.CREATED, evaluates=False)
    assert (queued.status, queued.payload) == (S.QUEUED, {"position": 2})
    again = requeued(3)
    assert again.status is S.CREATED
    assert again.payload == {"attempt": 3}
    assert again.fields["attempt"] == 3
    cleared = ("failure_reason", "transcript", "result", "words", "phonemes", "accuracy")
    assert all(again.fields[name] is None for name in cleared)
    assert Stage.TRANSCRIBING.value == S.TRANSCRIBING.value
