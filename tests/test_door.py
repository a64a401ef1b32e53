"""The door to a task under races: shutdown, restarts, outages, deletion; asyncio and trio."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import anyio
import pytest

from speech.base import AudioInput, PermanentStageError, TransientStageError
from supervisor.backoff import Backoff
from supervisor.config import SupervisorConfig
from supervisor.door import TaskDoor
from supervisor.events import Change, EventType
from supervisor.lifecycle import Status
from supervisor.messages import CancelOutcome
from supervisor.ports import JournalUnavailable, TaskSnapshot
from supervisor.supervisor import Supervisor
from tests.fakes import (
    Block,
    Engine,
    MemoryJournal,
    anyio_backend,  # noqa: F401
    assert_valid_history,
    drain,
    gone,
    reached,
    running,
    wait_until,
)
from web.feed import open_feed

pytestmark = pytest.mark.anyio
S = Status
LIMIT = 5


class Sleeps:
    """An injected sleep: every call waits until the test lets it go (or returns at once)."""

    def __init__(self) -> None:
        self.hold: Block | None = None
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        hold = self.hold
        if hold is not None:
            hold.entered.set()
            await hold.release.wait()
        await anyio.lowlevel.checkpoint()


class Journal(MemoryJournal):
    """A MemoryJournal whose upload reads can fail, and whose loads can be held."""

    def __init__(self) -> None:
        super().__init__()
        self.upload_failures = 0
        self.load_gate: Block | None = None

    async def load_upload(self, task_id: UUID) -> AudioInput:
        if self.upload_failures:
            self.upload_failures -= 1
            raise JournalUnavailable("db away")
        return await super().load_upload(task_id)

    async def load(self, task_id: UUID) -> TaskSnapshot | None:
        gate = self.load_gate
        if gate is not None:
            gate.entered.set()
            await gate.release.wait()
        return await super().load(task_id)


def supervisor_of(
    journal: MemoryJournal, engine: Engine, sleep: Sleeps, **config: Any
) -> Supervisor:
    settings: dict[str, Any] = {"capacity": 4, "journal_retry_cap": 0.0, **config}
    return Supervisor(
        journal,
        engine.pipeline,
        SupervisorConfig(**settings),
        clock=lambda: 0.0,
        backoff=Backoff(base=1.0, cap=1.0),
        sleep=sleep,
    )


@asynccontextmanager
async def door_of(supervisor: Supervisor) -> AsyncIterator[TaskDoor]:
    async with running(supervisor) as door:
        yield door


async def answer(into: list[Any], call: Callable[[], Awaitable[Any]]) -> None:
    into.append(await call())


async def test_a_cancel_sent_while_the_service_stops_is_persisted() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    engine.plan("transcribe", b"t", Block())  # it never finishes by itself
    supervisor = supervisor_of(journal, engine, sleeps)
    outcome: list[CancelOutcome] = []
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.PREPROCESSING)
            journal.gate = gate = Block()
            hold.release.set()
            await gate.entered.wait()  # the actor is inside a write (to transcribing)...
            supervisor.shutdown()  # ...its Stop is sent...
            async with anyio.create_task_group() as group:
                group.start_soon(answer, outcome, lambda: door.cancel(task))
                await anyio.wait_all_tasks_blocked()  # ...and the Cancel queues behind it
                journal.gate = None
                gate.release.set()
    assert outcome == [CancelOutcome.CANCELLED]
    assert journal.status(task) is S.CANCELLED  # not left to complete on the next start
    assert_valid_history(journal.events(task))


async def test_a_cancel_while_the_actor_restarts_after_an_outage_is_carried_out() -> None:
    journal, engine, sleeps = Journal(), Engine(), Sleeps()
    supervisor = supervisor_of(journal, engine, sleeps)
    outcome: list[CancelOutcome] = []
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            sleeps.hold = Block()
            journal.upload_failures = 1  # the worker's read meets an outage: a restart
            task = journal.add_task(b"t")
            await door.start(task)
            await sleeps.hold.entered.wait()  # between two actors
            async with anyio.create_task_group() as group:
                group.start_soon(answer, outcome, lambda: door.cancel(task))
                await anyio.wait_all_tasks_blocked()
                sleeps.hold.release.set()
            await gone(door, task)
    assert outcome == [CancelOutcome.CANCELLED]
    assert journal.status(task) is S.CANCELLED
    assert_valid_history(journal.events(task))


async def test_an_outage_during_a_workers_read_does_not_fail_the_task() -> None:
    journal, engine, sleeps = Journal(), Engine(), Sleeps()
    supervisor = supervisor_of(journal, engine, sleeps, max_restarts=0)
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            journal.upload_failures = 2
            task = journal.add_task(b"t")
            await door.create(_admitted(journal, task))
            await wait_until(journal, lambda: journal.status(task) is S.COMPLETED)
    assert journal.tasks[task].fields.get("failure_reason") is None
    assert_valid_history(journal.events(task))


async def test_a_task_stored_in_evaluating_completes_when_evaluation_no_longer_applies() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    task = journal.add_task(b"t")  # no reference text: the evaluator does not apply
    for status in (S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, S.EVALUATING):
        seq = len(journal.events(task))
        fields = {"transcript": "t"} if status is S.EVALUATING else {}
        await journal.append(task, seq, Change(EventType.STATUS, status, {}, fields))
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps, max_restarts=0)):
            await wait_until(journal, lambda: journal.status(task) is S.COMPLETED)
    assert journal.tasks[task].fields["transcript"] == "t"
    assert not [call for call in engine.calls if call[0] == "evaluate"]


async def test_stop_waits_until_no_actor_runs_even_in_a_restart() -> None:
    journal, engine, sleeps = Journal(), Engine(), Sleeps()
    supervisor = supervisor_of(journal, engine, sleeps)
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            sleeps.hold = Block()
            journal.upload_failures = 1
            task = journal.add_task(b"t")
            await door.start(task)
            await sleeps.hold.entered.wait()  # its actor is about to be restarted
            async with anyio.create_task_group() as group:
                group.start_soon(door.stop, task)
                await anyio.wait_all_tasks_blocked()
                sleeps.hold.release.set()
            assert not door.owns(task)
            status = journal.status(task)
            await anyio.wait_all_tasks_blocked()
            assert journal.status(task) is status  # nothing ran it after stop returned
    assert status in (S.QUEUED, S.STARTED, S.PREPROCESSING)
    assert engine.count("preprocess", b"t") == 0


async def test_giving_up_during_an_outage_still_records_the_failure() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    hold = Block(then=RuntimeError("boom"))
    engine.plan("preprocess", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps, max_restarts=0)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, S.PREPROCESSING)
            journal.fail_appends(3)  # the failure's write meets an outage three times
            hold.release.set()  # the stage crashes its actor: no restart is allowed
            await gone(door, task)
    assert journal.pending_failures == 0
    assert journal.status(task) is S.FAILED
    reason = journal.tasks[task].fields["failure_reason"]
    assert reason == "the task failed unexpectedly 1 times in a row and was stopped"
    assert "RuntimeError" not in reason
    assert "boom" not in reason


async def test_a_task_waiting_to_retry_gives_its_engine_slot_to_another() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    engine.plan("preprocess", b"a", TransientStageError("busy"))
    supervisor = supervisor_of(journal, engine, sleeps, capacity=1)
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            sleeps.hold = hold = Block()
            first = journal.add_task(b"a")
            await door.start(first)
            await hold.entered.wait()  # in its backoff
            second = journal.add_task(b"b")
            await door.start(second)
            await wait_until(journal, lambda: journal.status(second) is S.COMPLETED)
            assert journal.status(first) is S.PREPROCESSING
            hold.release.set()
            await wait_until(journal, lambda: journal.status(first) is S.COMPLETED)
    assert engine.max_running == 1
    assert_valid_history(journal.events(first))


async def test_delete_tells_the_streams_and_nothing_writes_after_it() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    retried: list[bool] = []
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            feed = await door.follow(task)
            assert feed is not None

            async def remove() -> bool:
                retried.append(await door.retry(task))  # racing the delete: refused
                await door.start(task)  # and no actor may start for it now
                assert not door.owns(task)
                journal.delete(task)
                return True

            assert await door.delete(task, remove)
            assert await drain(feed) == []
            assert feed.deleted
    assert retried == [False]
    assert task not in journal.tasks


async def test_a_retry_that_races_the_shutdown_is_persisted_and_runs_on_the_next_start() -> None:
    journal, engine, sleeps = Journal(), Engine(), Sleeps()
    task = journal.add_task(b"t")
    await journal.append(task, 1, Change(EventType.STATUS, S.CANCELLED))
    supervisor = supervisor_of(journal, engine, sleeps)
    retried: list[bool] = []
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            journal.load_gate = gate = Block()
            async with anyio.create_task_group() as group:
                group.start_soon(answer, retried, lambda: door.retry(task))
                await gate.entered.wait()
                supervisor.shutdown()  # it begins to stop while the retry reads the task
                journal.load_gate = None
                gate.release.set()
        assert retried == [True]
        assert journal.status(task) is S.CREATED
        async with door_of(supervisor_of(journal, engine, sleeps)):
            await wait_until(journal, lambda: journal.status(task) is S.COMPLETED)
    assert journal.tasks[task].attempt == 2


def _admitted(journal: MemoryJournal, task: UUID) -> Callable[[], Awaitable[tuple[Any, bool]]]:
    class Record:
        def snapshot(self) -> TaskSnapshot:
            return journal._snapshot(journal.tasks[task])

    async def admit() -> tuple[Record, bool]:
        return Record(), True

    return admit


class _FailingEvents:
    """A store whose journal read fails (the database went away between two queries)."""

    async def events_after(self, task_id: UUID, seq: int) -> list[Any]:
        await anyio.lowlevel.checkpoint()
        raise JournalUnavailable("db away")


async def test_a_feed_whose_journal_read_fails_leaves_no_subscription_open() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    hold = Block()
    engine.plan("transcribe", b"t", hold)
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with pytest.raises(JournalUnavailable):
                    await open_feed(_FailingEvents(), door, task, 0, status=S.TRANSCRIBING)  # type: ignore[arg-type]
                gc.collect()
            assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
            hold.release.set()


async def test_an_engine_message_with_a_nul_still_fails_the_task_with_its_reason() -> None:
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    engine.plan("preprocess", b"t", PermanentStageError("bad\x00input"))
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps, max_restarts=0)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await gone(door, task)
    assert journal.status(task) is S.FAILED  # not a crash of every write of the failure
    assert journal.tasks[task].fields["failure_reason"] == "badinput"


async def test_every_ended_listener_hears_each_supervision_end_through_the_door() -> None:
    """The cluster's way to hear that a task's supervision ended (to let its claim go):
    a listener registered on the door, told whether the task ended."""
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    engine.plan("transcribe", b"s", Block())  # never finishes: it is stopped
    supervisor = supervisor_of(journal, engine, sleeps)
    first: list[tuple[UUID, bool]] = []
    second: list[tuple[UUID, bool]] = []
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor) as door:
            door.add_ended_listener(lambda task_id, ended: first.append((task_id, ended)))
            door.add_ended_listener(lambda task_id, ended: second.append((task_id, ended)))
            done, stopped = journal.add_task(b"d"), journal.add_task(b"s")
            await door.start(done)
            await door.start(stopped)
            await wait_until(journal, lambda: journal.status(done) is S.COMPLETED)
            await reached(journal, stopped, S.TRANSCRIBING)
            await door.stop(stopped)
    assert sorted(first) == sorted(second) == sorted([(done, True), (stopped, False)])


async def test_the_doors_offline_cancel_writes_for_a_task_no_actor_runs() -> None:
    """What the cluster uses for a task no instance owns: the door writes ``cancelled``
    itself, and says ENDED for a task that has already ended."""
    journal, engine, sleeps = MemoryJournal(), Engine(), Sleeps()
    with anyio.fail_after(LIMIT):
        async with door_of(supervisor_of(journal, engine, sleeps)) as door:
            idle, ended = journal.add_task(b"i"), journal.add_task(b"e")  # never started
            await journal.append(ended, 1, Change(EventType.STATUS, S.FAILED))
            assert await door.cancel_offline(idle, "nobody runs it") is CancelOutcome.CANCELLED
            assert await door.cancel_offline(ended, "too late") is CancelOutcome.ENDED
    assert journal.status(idle) is S.CANCELLED
    assert journal.status(ended) is S.FAILED
