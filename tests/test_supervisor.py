"""The supervisor with a MemoryJournal and scripted stages, on asyncio and trio."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid4

import anyio
import numpy as np
import pytest
from anyio.abc import TaskStatus

from speech.base import (
    Evaluation,
    NormalisedAudio,
    PermanentStageError,
    Posteriors,
    ProgressCallback,
    Transcription,
    TransientStageError,
)
from supervisor.door import TaskDoor
from supervisor.events import Change, Event, EventType, QueuePosition
from supervisor.lifecycle import TERMINAL, Status
from supervisor.messages import CancelOutcome
from supervisor.supervisor import NotAccepting
from tests.fakes import (
    Block,
    Engine,
    FakeEvaluator,
    FakeTranscriber,
    MemoryJournal,
    anyio_backend,  # noqa: F401
    assert_valid_history,
    drain,
    gone,
    make_supervisor,
    reached,
    running,
    wait_until,
)

pytestmark = pytest.mark.anyio
S = Status
LIMIT = 5  # seconds any one test may take; they finish in milliseconds


def terminal(journal: MemoryJournal, task: UUID) -> bool:
    return journal.status(task) in TERMINAL


def status_events(events: list[Event]) -> list[Status]:
    return [e.status for e in events if e.type is EventType.STATUS]


# The happy path and subscriptions.


@pytest.mark.parametrize("evaluates", [False, True])
async def test_a_task_runs_through_every_stage_to_completed(evaluates: bool) -> None:
    journal, engine = MemoryJournal(), Engine()
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            reference = "hello world" if evaluates else None
            task = journal.add_task(b"hello world", reference_text=reference)
            await door.start(task)
            subscription = await door.follow(task)
            assert subscription is not None
            live = await drain(subscription)

    middle = [S.EVALUATING] if evaluates else []
    expected = [S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, *middle]
    assert journal.statuses(task) == [*expected, S.COMPLETED]
    events = journal.events(task)
    assert_valid_history(events)
    assert [e.type for e in events] == [EventType.STATUS] * len(events)
    assert live == events[subscription.seq :]
    assert live[-1].status is S.COMPLETED  # and the stream ended right after it
    assert events[1].payload == {"position": 0}
    stored = journal.tasks[task]
    assert stored.fields["transcript"] == "hello world"
    assert stored.fields["result"] == "h ə"
    assert stored.fields["words"] == [
        {"text": "hello world", "start": 0.0, "end": 0.5, "confidence": 0.9}
    ]
    assert [p["ipa"] for p in stored.fields["phonemes"]] == ["h", "ə"]
    assert stored.normalised == NormalisedAudio(b"hello world", 11 / 32_000)
    if evaluates:
        assert stored.fields["accuracy"] == 87.5
        assert stored.fields["mistakes"] == [{"type": "substitution"}]
        assert events[-1].payload == {"stage": "evaluating", "accuracy": 87.5}
    else:
        assert "accuracy" not in stored.fields
    stages = ["preprocess", "transcribe"] + (["evaluate"] if evaluates else [])
    assert [stage for stage, _ in engine.calls] == stages
    assert len(door) == 0


async def test_subscribers_mid_run_get_exactly_the_events_after_their_seq() -> None:
    journal, engine = MemoryJournal(), Engine()
    steps = [Block(), Block(progress=(0.25, 1.5)), Block()]
    engine.plan("preprocess", b"abc", steps[0])
    engine.plan("transcribe", b"abc", TransientStageError("busy"), steps[1])
    engine.plan("evaluate", b"abc", steps[2])
    feeds: list[tuple[int, list[Event]]] = []

    async def follow(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        subscription = await door.follow(task)
        task_status.started()
        if subscription is None:  # it raced the last release and lost
            assert journal.status(task) is S.COMPLETED
            return
        assert subscription.seq is not None  # an actor's feed
        feeds.append((subscription.seq, await drain(subscription)))

    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"abc", reference_text="abc")
            async with anyio.create_task_group() as group:
                await door.start(task)
                statuses = [S.PREPROCESSING, S.TRANSCRIBING, S.EVALUATING]
                for step, status in zip(steps, statuses, strict=True):
                    group.start_soon(follow)
                    await step.entered.wait()
                    await group.start(follow)  # subscribed while the stage is blocked
                    await reached(journal, task, status)
                    await group.start(follow)
                    step.release.set()
                    group.start_soon(follow)  # races the release

    events = journal.events(task)
    assert_valid_history(events)
    assert len(feeds) >= 11
    for seq, live in feeds:
        assert live == events[seq:], seq  # no gap, no duplicate, ends at the terminal event
        assert live[-1].status is S.COMPLETED
    progress = [e.payload for e in events if e.type is EventType.PROGRESS]
    assert progress == [
        {"stage": "transcribing", "percent": 25.0},
        {"stage": "transcribing", "percent": 100.0},
    ]
    assert [e.type for e in events].count(EventType.RETRY) == 1
    # those that joined while a stage was blocked: after its status, retries and progress
    assert {seq for seq, _ in feeds} >= {4, 8, 9}


async def test_subscribing_to_a_finished_or_unknown_task_gives_none() -> None:
    journal, engine = MemoryJournal(), Engine()
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task()
            await door.start(task)
            await drain(await door.follow(task))
            assert await door.follow(task) is None
            assert await door.follow(uuid4()) is None


# Stage errors.


async def test_transient_errors_are_retried_with_a_retry_event_then_succeed() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", TransientStageError("engine busy"), TransientStageError("5xx"))
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, stage_attempts=3)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await drain(await door.follow(task))

    events = journal.events(task)
    assert_valid_history(events)
    retries = [e for e in events if e.type is EventType.RETRY]
    assert [(e.status, e.payload) for e in retries] == [
        (S.TRANSCRIBING, {"stage": "transcribing", "attempt": n, "error": error, "delay": 0.0})
        for n, error in [(1, "engine busy"), (2, "5xx")]
    ]
    assert journal.status(task) is S.COMPLETED
    assert engine.count("transcribe", b"t") == 3


async def test_past_the_attempts_the_task_fails_with_the_last_error() -> None:
    journal, engine = MemoryJournal(), Engine()
    errors = [TransientStageError(f"timeout {n}") for n in range(1, 4)]
    engine.plan("preprocess", b"t", *errors)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, stage_attempts=3)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            live = await drain(await door.follow(task))

    events = journal.events(task)
    assert_valid_history(events)
    assert live[-1] == events[-1]
    assert events[-1].status is S.FAILED
    reason = "timeout 3 (gave up after 3 attempts)"
    assert events[-1].payload == {"stage": "preprocessing", "reason": reason}
    assert journal.tasks[task].fields["failure_reason"] == reason
    assert [e.payload["attempt"] for e in events if e.type is EventType.RETRY] == [1, 2]
    assert engine.count("preprocess", b"t") == 3
    assert engine.count("transcribe", b"t") == 0


async def test_a_permanent_error_fails_at_once() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("preprocess", b"t", PermanentStageError("unreadable audio"))
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await drain(await door.follow(task))

    events = journal.events(task)
    assert_valid_history(events)
    assert status_events(events)[-2:] == [S.PREPROCESSING, S.FAILED]
    assert not [e for e in events if e.type is EventType.RETRY]
    assert journal.tasks[task].fields["failure_reason"] == "unreadable audio"
    assert engine.count("preprocess", b"t") == 1


async def test_a_stage_past_its_timeout_counts_as_a_transient_failure() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", Block(), Block())  # never released
    # Long enough that the instant stages never reach it on a loaded machine.
    supervisor = make_supervisor(journal, engine, stage_attempts=2, stage_timeout=0.25)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await drain(await door.follow(task))

    events = journal.events(task)
    reason = "transcribing took longer than 0.25 s"
    assert [e.payload["error"] for e in events if e.type is EventType.RETRY] == [reason]
    assert events[-1].status is S.FAILED
    assert events[-1].payload["reason"] == f"{reason} (gave up after 2 attempts)"


# Crashes and supervision.


async def test_a_crashed_actor_is_restarted_and_resumes_at_its_persisted_stage() -> None:
    journal, engine = MemoryJournal(), Engine()
    crash = Block(then=RuntimeError("boom"))
    engine.plan("transcribe", b"t", crash)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            feed = await door.follow(task)
            # the worker runs ahead of the journal: wait until transcribing is persisted
            await wait_until(journal, lambda: journal.status(task) is S.TRANSCRIBING)
            crash.release.set()
            first = await drain(feed)  # ends at the crash
            await wait_until(journal, lambda: terminal(journal, task))

    assert first[-1].status is S.TRANSCRIBING
    events = journal.events(task)
    assert_valid_history(events)
    assert status_events(events) == [
        S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, S.COMPLETED
    ]  # fmt: skip
    assert engine.count("preprocess", b"t") == 1  # resumed at transcribing
    assert engine.count("transcribe", b"t") == 2


async def test_past_the_intensity_limit_the_task_fails_while_another_completes() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"doomed", *[RuntimeError(f"boom {n}") for n in range(1, 4)])
    hold = Block()
    engine.plan("transcribe", b"other", hold)
    supervisor = make_supervisor(journal, engine, max_restarts=2, restart_period=60.0)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            doomed, other = journal.add_task(b"doomed"), journal.add_task(b"other")
            await door.start(other)
            await hold.entered.wait()
            await reached(journal, other, S.TRANSCRIBING)
            other_feed = await door.follow(other)
            await door.start(doomed)
            await wait_until(journal, lambda: terminal(journal, doomed))
            assert journal.status(other) is S.TRANSCRIBING  # untouched meanwhile
            hold.release.set()
            other_live = await drain(other_feed)

    events = journal.events(doomed)
    assert_valid_history(events)
    assert engine.count("transcribe", b"doomed") == 3  # the first run and two restarts
    assert events[-1].status is S.FAILED
    reason = "the task failed unexpectedly 3 times in a row and was stopped"
    assert events[-1].payload == {"reason": reason}
    assert journal.tasks[doomed].fields["failure_reason"] == reason
    assert journal.status(other) is S.COMPLETED
    assert other_live[-1].status is S.COMPLETED  # its stream never broke
    assert engine.count("preprocess", b"other") == 1
    assert_valid_history(journal.events(other))


async def test_crashes_spread_wider_than_the_period_never_exhaust_the_limit() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", *[RuntimeError("flaky")] * 5)
    ticks = iter(range(0, 10_000, 100))  # every crash is 100 s after the last
    supervisor = make_supervisor(
        journal, engine, clock=lambda: float(next(ticks)), max_restarts=1, restart_period=60.0
    )
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert engine.count("transcribe", b"t") == 6


async def test_the_supervisor_counts_the_actor_restarts_for_the_operator() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", *[RuntimeError("flaky")] * 2)
    supervisor = make_supervisor(journal, engine, max_restarts=3, restart_period=60.0)
    door = TaskDoor(supervisor)
    assert door.actor_restarts == 0
    with anyio.fail_after(LIMIT):
        async with running(supervisor):
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert door.actor_restarts == 2


async def test_journal_outages_pause_the_actor_without_counting_as_crashes() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    engine.plan("transcribe", b"t", RuntimeError("one real crash"))
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            journal.fail_appends(4)  # the very first write (queued) fails four times
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.PREPROCESSING)
            assert journal.pending_failures == 0
            journal.fail_appends(6)  # the database goes away mid-run
            hold.release.set()
            await wait_until(journal, lambda: terminal(journal, task))

    events = journal.events(task)
    assert_valid_history(events)
    assert journal.status(task) is S.COMPLETED
    assert journal.pending_failures == 0


async def test_a_subscriber_keeps_its_stream_through_a_journal_outage() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            subscription = await door.follow(task)
            assert subscription is not None
            journal.fail_appends(5)  # the next transition waits for the database
            hold.release.set()
            live = await drain(subscription)
    events = journal.events(task)
    assert journal.pending_failures == 0
    assert live == events[subscription.seq :]  # one stream, no gap, to the terminal event
    assert live[-1].status is S.COMPLETED


async def test_other_journal_errors_count_as_crashes() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            journal.fail_appends(2, lambda: OSError("disk full"))
            hold.release.set()
            await wait_until(journal, lambda: terminal(journal, task))
            assert journal.pending_failures == 0

    assert journal.status(task) is S.FAILED
    reason = journal.tasks[task].fields["failure_reason"]
    assert reason == "the task failed unexpectedly 2 times in a row and was stopped"


async def test_a_task_deleted_under_its_actor_ends_the_actor() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            journal.delete(task)
            hold.release.set()  # its next write is stale; on restart the task is gone
            await gone(door, task)
            assert task not in journal.tasks
            assert engine.running == 0
    assert engine.count("transcribe", b"t") == 1  # nothing ran it again


# Cancel and retry.


async def test_cancel_while_transcribing_then_retry_runs_to_completed() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.TRANSCRIBING)
            feed = await door.follow(task)
            with anyio.fail_after(1):
                assert await door.cancel(task) is CancelOutcome.CANCELLED
                cancelled = await drain(feed)
            assert [e.status for e in cancelled] == [S.CANCELLED]
            assert cancelled[0].payload == {"reason": "cancelled by the user"}
            assert engine.running == 0  # the stage was cancelled, not left running

            assert await door.retry(task)
            await drain(await door.follow(task))

    events = journal.events(task)
    assert_valid_history(events)
    assert status_events(events) == [
        S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, S.CANCELLED,
        S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, S.COMPLETED,
    ]  # fmt: skip
    requeued = events[6]
    assert requeued.payload == {"attempt": 2}
    stored = journal.tasks[task]
    assert stored.attempt == 2
    assert stored.fields["failure_reason"] is None
    assert stored.fields["transcript"] == "t"
    assert engine.count("preprocess", b"t") == 1  # the decoded audio was kept
    assert engine.count("transcribe", b"t") == 2


async def test_retry_right_after_the_cancelled_event() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.TRANSCRIBING)
            feed = await door.follow(task)
            assert feed is not None
            assert await door.cancel(task) is CancelOutcome.CANCELLED
            async with feed.events:
                cancelled = await feed.events.receive()
                assert isinstance(cancelled, Event)
                assert cancelled.status is S.CANCELLED
                # a client that retries as soon as it sees ``cancelled``
                assert await door.retry(task)
            await drain(await door.follow(task))
    assert journal.status(task) is S.COMPLETED


async def test_cancel_and_retry_say_false_when_they_do_not_apply() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"live", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            done, live = journal.add_task(b"done"), journal.add_task(b"live")
            await door.start(done)
            await drain(await door.follow(done))
            assert CancelOutcome.ENDED is await door.cancel(done)  # already terminal
            assert not await door.retry(done)  # completed is not retryable
            assert CancelOutcome.ENDED is await door.cancel(uuid4())
            assert not await door.retry(uuid4())
            await door.start(live)
            await hold.entered.wait()
            assert not await door.retry(live)  # still running
            feed = await door.follow(live)
            assert await door.cancel(live) is CancelOutcome.CANCELLED
            await wait_until(journal, lambda: terminal(journal, live))
            assert CancelOutcome.ENDED is await door.cancel(live)  # already cancelled
            await drain(feed)
            assert CancelOutcome.ENDED is await door.cancel(live)
    assert journal.status(done) is S.COMPLETED
    assert journal.statuses(live)[-1] is S.CANCELLED
    assert_valid_history(journal.events(live))


async def test_cancel_of_a_live_task_without_an_actor_is_recorded() -> None:
    journal, engine = MemoryJournal(), Engine()
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task()  # after recovery: nobody gave it an actor
            await door.stop(task)  # no actor: nothing to wait for
            assert await door.cancel(task, "user deleted it") is CancelOutcome.CANCELLED
    assert journal.statuses(task) == [S.CREATED, S.CANCELLED]
    assert journal.tasks[task].fields["failure_reason"] == "user deleted it"


# Capacity.


async def test_with_capacity_one_tasks_wait_their_turn_with_queue_positions() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"a", hold)
    supervisor = make_supervisor(journal, engine, capacity=1)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            tasks = [journal.add_task(key) for key in (b"a", b"b", b"c")]
            feeds = []
            for task, status in zip(tasks, [S.PREPROCESSING, S.QUEUED, S.QUEUED], strict=True):
                await door.start(task)
                feeds.append(await door.follow(task))
                await reached(journal, task, status)
            await hold.entered.wait()
            assert engine.calls == [("preprocess", b"a")]
            assert supervisor.slots.waiting == 2
            assert [door.queue_position(t) for t in tasks] == [0, 1, 2]
            hold.release.set()
            for feed in feeds:
                await drain(feed)

    positions = [journal.events(t)[1].payload for t in tasks]
    assert positions == [{"position": 0}, {"position": 1}, {"position": 2}]
    assert engine.max_running == 1
    assert [key for _, key in engine.calls] == [b"a", b"a", b"b", b"b", b"c", b"c"]
    for task in tasks:
        assert journal.status(task) is S.COMPLETED
        assert_valid_history(journal.events(task))


async def _three_in_line(journal: MemoryJournal, door: TaskDoor) -> tuple[UUID, UUID, UUID]:
    """Tasks a, b and c started one by one with one engine slot: a holds it (preprocessing),
    b and c wait in that order."""
    tasks = tuple(journal.add_task(k) for k in (b"a", b"b", b"c"))
    for task, status in zip(tasks, (S.PREPROCESSING, S.QUEUED, S.QUEUED), strict=True):
        await door.start(task)
        await reached(journal, task, status)
    first, second, third = tasks
    return first, second, third


async def test_a_cancelled_queued_task_gives_up_its_place() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"a", hold)
    supervisor = make_supervisor(journal, engine, capacity=1)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            first, waiting, last = await _three_in_line(journal, door)
            assert supervisor.slots.waiting == 2
            feed = await door.follow(waiting)
            assert await door.cancel(waiting) is CancelOutcome.CANCELLED
            assert [e.status for e in await drain(feed)] == [S.CANCELLED]  # and its actor ended
            assert supervisor.slots.waiting == 1
            assert door.queue_position(last) == 1  # it moved up
            hold.release.set()
            await wait_until(journal, lambda: terminal(journal, last))
    assert journal.status(first) is S.COMPLETED
    assert journal.status(waiting) is S.CANCELLED
    assert journal.status(last) is S.COMPLETED
    assert engine.count("preprocess", b"b") == 0


async def test_no_stage_starts_before_the_output_of_the_one_before_is_journalled() -> None:
    """A write that hangs (or is refused: the task was taken over) keeps the engines idle
    for the task: before, the worker ran on, and an instance cut off from the database
    called every remaining stage of a task it had lost."""
    journal, engine = MemoryJournal(), Engine()
    preprocessing = Block()
    engine.plan("preprocess", b"a", preprocessing)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"a")
            await door.start(task)
            await preprocessing.entered.wait()
            journal.gate = hung = Block()  # the database stops answering
            preprocessing.release.set()
            await hung.entered.wait()  # the preprocessing output's write hangs
            await anyio.wait_all_tasks_blocked()
            assert engine.calls == [("preprocess", b"a")]  # no transcribing meanwhile
            hung.release.set()
            journal.gate = None
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert engine.count("transcribe", b"a") == 1


async def test_a_stage_waiting_to_retry_lets_the_transcribers_posteriors_go() -> None:
    """They are held with the engine slot (the evaluator makes them again when absent):
    a task sleeping out a retry of its evaluation, without a slot, must not keep them."""
    journal, engine = MemoryJournal(), Engine()
    handed: list[bool] = []

    class WithPosteriors(FakeTranscriber):
        async def transcribe(
            self, audio: NormalisedAudio, language: str, progress: ProgressCallback
        ) -> Transcription:
            heard = await super().transcribe(audio, language, progress)
            frames = np.zeros((100, 4), dtype=np.float32)
            return replace(heard, posteriors=Posteriors(frames, 0.02, "test"))

    class Noting(FakeEvaluator):
        async def evaluate(
            self,
            transcription: Transcription,
            reference_text: str | None,
            text_id: UUID | None,
            audio: NormalisedAudio | None = None,
        ) -> Evaluation | None:
            handed.append(transcription.posteriors is not None)
            return await super().evaluate(transcription, reference_text, text_id, audio)

    engine.transcriber, engine.evaluator = WithPosteriors(engine), Noting(engine)
    engine.plan("evaluate", b"a", TransientStageError("the texts service is away"))
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"a", reference_text="a")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert handed == [True, False]  # the first try had them; the retry makes its own


async def test_a_waiting_tasks_subscribers_hear_its_place_each_time_the_line_moves() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"a", hold)
    supervisor = make_supervisor(journal, engine, capacity=1)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            _, leaving, last = await _three_in_line(journal, door)
            await hold.entered.wait()
            feed = await door.follow(last)
            assert feed is not None
            assert await door.cancel(leaving) is CancelOutcome.CANCELLED
            hold.release.set()
            async with feed.events:
                heard = [item async for item in feed.events]
    # A newcomer hears where it stands now, then each move; the grant is told by status.
    assert heard[:2] == [QueuePosition(last, 2), QueuePosition(last, 1)]
    assert all(isinstance(item, Event) for item in heard[2:])
    assert [e.status for e in heard[2:] if isinstance(e, Event)][-1] is S.COMPLETED
    assert journal.events(last)[1].payload == {"position": 2}  # where it joined


# Recovery, stop and shutdown.


async def _persist(journal: MemoryJournal, task: UUID, *statuses: Status) -> None:
    for status in statuses:
        normalised = None
        if status is S.TRANSCRIBING:
            normalised = NormalisedAudio(journal.tasks[task].upload.data, 1.0)
        seq = len(journal.events(task))
        await journal.append(task, seq, Change(EventType.STATUS, status), normalised)


async def test_on_start_every_live_task_gets_its_actor_back_and_completes() -> None:
    journal, engine = MemoryJournal(), Engine()
    created = journal.add_task(b"created")
    queued = journal.add_task(b"queued")
    started = journal.add_task(b"started")
    transcribing = journal.add_task(b"transcribing", reference_text="x")
    finished = journal.add_task(b"finished")
    await _persist(journal, queued, S.QUEUED)
    await _persist(journal, started, S.QUEUED, S.STARTED)
    await _persist(journal, transcribing, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING)
    await _persist(journal, finished, S.CANCELLED)
    live = [created, queued, started, transcribing]
    with anyio.fail_after(LIMIT):
        supervisor = make_supervisor(journal, engine)
        async with running(supervisor):
            assert {owned.task_id for owned in supervisor.ownership.entries()} <= set(live)
            await wait_until(journal, lambda: all(terminal(journal, t) for t in live))

    for task in live:
        assert journal.status(task) is S.COMPLETED
        assert_valid_history(journal.events(task))
    assert journal.statuses(queued)[:4] == [S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING]
    assert journal.statuses(started)[:4] == [S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING]
    assert journal.statuses(transcribing)[-3:] == [S.TRANSCRIBING, S.EVALUATING, S.COMPLETED]
    assert engine.count("preprocess", b"transcribing") == 0  # resumed at transcribing
    assert engine.count("transcribe", b"transcribing") == 1
    assert journal.statuses(finished) == [S.CREATED, S.CANCELLED]
    assert not any(key == b"finished" for _, key in engine.calls)


async def test_stop_leaves_the_task_live_and_waits_for_its_actor() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.TRANSCRIBING)
            owned = door._ownership.get(task)
            assert owned is not None
            feed = await door.follow(task)
            seq = len(journal.events(task))
            await door.stop(task)
            assert owned.ended.is_set()
            assert not door.owns(task)
            assert await drain(feed) == []  # its stream ended
            assert engine.running == 0
            assert len(journal.events(task)) == seq  # nothing persisted
            assert journal.status(task) is S.TRANSCRIBING

            await door.start(task)  # it resumes where it stopped
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert engine.count("preprocess", b"t") == 1
    assert_valid_history(journal.events(task))


async def test_spawning_a_task_that_has_an_actor_does_nothing() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await door.start(task)
            assert len(door) == 1
            hold.release.set()
            await wait_until(journal, lambda: terminal(journal, task))
    assert_valid_history(journal.events(task))
    assert engine.count("transcribe", b"t") == 1


async def test_shutdown_stops_actors_at_a_safe_point_and_the_next_start_resumes_them() -> None:
    journal, engine = MemoryJournal(), Engine()
    holds = {key: Block() for key in (b"a", b"b")}
    for key, hold in holds.items():
        engine.plan("transcribe", key, hold)
    supervisor = make_supervisor(journal, engine, capacity=2, shutdown_grace=5.0)
    door = TaskDoor(supervisor)
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as group:
            await group.start(supervisor.run)
            tasks = [journal.add_task(key) for key in (b"a", b"b", b"c")]
            for task in tasks:
                await door.start(task)
            for task, status in zip(tasks, [S.TRANSCRIBING, S.TRANSCRIBING, S.QUEUED], strict=True):
                await reached(journal, task, status)
            feeds = [await door.follow(task) for task in tasks]
            before = {task: len(journal.events(task)) for task in tasks}
            with anyio.fail_after(1):  # well inside the grace period
                supervisor.shutdown()
                assert not supervisor.accepting
                with pytest.raises(NotAccepting):
                    await door.start(uuid4())
                ended = [await drain(feed) for feed in feeds]
        # ``run`` has returned: every actor ended
        assert ended == [[], [], []]
        assert len(door) == 0
        assert engine.running == 0
        for hold in holds.values():
            hold.release.set()
        assert {task: len(journal.events(task)) for task in tasks} == before
        assert [journal.status(t) for t in tasks] == [S.TRANSCRIBING, S.TRANSCRIBING, S.QUEUED]
        with pytest.raises(NotAccepting):
            await door.start(tasks[0])
        with pytest.raises(NotAccepting):
            await door.retry(tasks[0])

        async with running(make_supervisor(journal, engine)):
            await wait_until(journal, lambda: all(terminal(journal, t) for t in tasks))

    for task in tasks:
        assert journal.status(task) is S.COMPLETED
        assert_valid_history(journal.events(task))
    assert [engine.count("preprocess", k) for k in (b"a", b"b", b"c")] == [1, 1, 1]


async def test_shutdown_gives_up_waiting_after_the_grace_period() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    supervisor = make_supervisor(journal, engine, shutdown_grace=0.05)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.TRANSCRIBING)
            journal.gate = Block()  # the database hangs: the actor cannot reach its Stop
            hold.release.set()
            await journal.gate.entered.wait()
        # ``running`` returned although the actor never read its Stop
    assert len(door) == 0
    assert journal.status(task) is S.TRANSCRIBING
    assert len(journal.events(task)) == 5


async def test_spawn_before_run_is_refused() -> None:
    supervisor = make_supervisor(MemoryJournal(), Engine())
    door = TaskDoor(supervisor)
    assert not supervisor.accepting
    with pytest.raises(NotAccepting):
        await door.start(uuid4())


async def test_an_actor_that_crashes_during_shutdown_is_not_restarted() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    supervisor = make_supervisor(journal, engine)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.TRANSCRIBING)
            journal.gate = gate = Block()  # its next write hangs...
            hold.release.set()
            await gate.entered.wait()
            supervisor.shutdown()  # ...while a Stop waits behind it
            journal.fail_appends(1, lambda: RuntimeError("connection reset"))
            loads = journal.loads
            gate.release.set()  # the write fails: the actor crashes
    assert journal.loads == loads  # no new actor was started to load the task
    assert journal.status(task) is S.TRANSCRIBING


async def test_concurrent_spawns_of_one_task_start_one_actor() -> None:
    journal, engine = MemoryJournal(), Engine()
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=0)) as door:
            task = journal.add_task(b"t")  # after recovery, as the HTTP API creates tasks
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(door.start, task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.loads == 1
    assert journal.status(task) is S.COMPLETED
    assert_valid_history(journal.events(task))


async def test_retry_as_soon_as_a_crashing_task_is_failed() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("preprocess", b"t", RuntimeError("boom"), RuntimeError("boom"))
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
            assert journal.status(task) is S.FAILED
            assert await door.retry(task)  # while the failure is being recorded
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is S.COMPLETED
    assert journal.tasks[task].attempt == 2
    assert_valid_history(journal.events(task))


async def test_a_cancel_waiting_in_the_mailbox_survives_a_crash() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    outcome: list[CancelOutcome] = []

    async def cancel() -> None:
        outcome.append(await door.cancel(task))

    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: journal.status(task) is S.PREPROCESSING)
            journal.gate = gate = Block()
            hold.release.set()
            await gate.entered.wait()  # the actor is inside a write that will crash
            async with anyio.create_task_group() as group:
                group.start_soon(cancel)
                await anyio.wait_all_tasks_blocked()  # accepted into the mailbox
                assert outcome == []  # not answered before it is persisted
                journal.fail_appends(1, lambda: RuntimeError("the write blew up"))
                journal.gate = None
                gate.release.set()
    assert outcome == [CancelOutcome.CANCELLED]
    assert journal.status(task) is S.CANCELLED
    assert_valid_history(journal.events(task))
