"""In-memory seams for the supervisor tests: a faithful ``Journal`` and scriptable stages.

Stages are scripted per task: the preprocessor turns the upload's bytes into the
PCM, and the transcript is the PCM decoded, so every stage knows which task's
input it holds and a test can give each task its own behaviours.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import anyio
import anyio.lowlevel
import pytest

from speech.base import (
    AudioInput,
    Evaluation,
    NormalisedAudio,
    Phoneme,
    Pipeline,
    ProgressCallback,
    Transcription,
    Word,
)
from supervisor.backoff import Backoff
from supervisor.config import SupervisorConfig
from supervisor.door import TaskDoor
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import TERMINAL, Status, check_transition
from supervisor.messages import Subscription
from supervisor.ports import JournalUnavailable, StaleWrite, TaskSnapshot
from supervisor.supervisor import Supervisor


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test in a module that imports this runs on both backends."""
    return str(request.param)


# The journal.


@dataclass
class StoredTask:
    id: UUID
    upload: AudioInput
    language: str
    reference_text: str | None
    text_id: UUID | None
    status: Status = Status.CREATED
    attempt: int = 1
    normalised: NormalisedAudio | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class MemoryJournal:
    """``supervisor.ports.Journal`` in memory, with the PostgreSQL store's semantics."""

    def __init__(self) -> None:
        self.tasks: dict[UUID, StoredTask] = {}  # insertion order is creation order
        self._failures: deque[Callable[[], Exception]] = deque()
        #: Set after every successful append, so a test can wait for "the next write".
        self.appended = anyio.Event()
        #: While set, appends set its ``entered`` and wait for its ``release`` (a hung database).
        self.gate: Block | None = None
        #: How many times ``load`` was called (each actor start loads its task once).
        self.loads = 0

    # Test helpers.

    def add_task(
        self,
        data: bytes = b"hello world",
        *,
        language: str = "en-US",
        reference_text: str | None = None,
        text_id: UUID | None = None,
        task_id: UUID | None = None,
        upload: AudioInput | None = None,
    ) -> UUID:
        """Persist a new task with its ``created`` event at seq 1, as the store does.

        ``upload`` replaces the default one made of ``data``.
        """
        task_id = task_id or uuid4()
        upload = upload or AudioInput(data, "audio/wav", "recording.wav")
        task = StoredTask(task_id, upload, language, reference_text, text_id)
        task.events.append(
            Event(task_id, 1, EventType.STATUS, Status.CREATED, {}, datetime.now(UTC))
        )
        self.tasks[task_id] = task
        return task_id

    def fail_appends(
        self, count: int, error: Callable[[], Exception] = lambda: JournalUnavailable("db away")
    ) -> None:
        """Make the next ``count`` appends raise ``error()`` without writing anything."""
        self._failures.extend([error] * count)

    @property
    def pending_failures(self) -> int:
        return len(self._failures)

    def events(self, task_id: UUID) -> list[Event]:
        return list(self.tasks[task_id].events)

    def statuses(self, task_id: UUID) -> list[Status]:
        """The status of each STATUS event, in order."""
        return [e.status for e in self.tasks[task_id].events if e.type is EventType.STATUS]

    def status(self, task_id: UUID) -> Status:
        return self.tasks[task_id].status

    def delete(self, task_id: UUID) -> None:
        del self.tasks[task_id]

    # The Journal protocol.

    async def load(self, task_id: UUID) -> TaskSnapshot | None:
        self.loads += 1
        await anyio.lowlevel.checkpoint()
        task = self.tasks.get(task_id)
        return None if task is None else self._snapshot(task)

    def _snapshot(self, task: StoredTask) -> TaskSnapshot:
        return TaskSnapshot(
            id=task.id,
            status=task.status,
            seq=len(task.events),
            attempt=task.attempt,
            language=task.language,
            reference_text=task.reference_text,
            text_id=task.text_id,
            transcription=_transcription(task.fields),
        )

    async def append(
        self,
        task_id: UUID,
        after_seq: int,
        change: Change,
        normalised: NormalisedAudio | None = None,
    ) -> Event:
        await anyio.lowlevel.checkpoint()
        if self.gate is not None:
            self.gate.entered.set()
            await self.gate.release.wait()
        if self._failures:
            raise self._failures.popleft()()
        _check_storable(change)
        task = self.tasks.get(task_id)
        if task is None or len(task.events) != after_seq:
            raise StaleWrite(f"task {task_id} is not at seq {after_seq}")
        event = Event(
            task_id,
            after_seq + 1,
            change.type,
            change.status,
            dict(change.payload),
            datetime.now(UTC),
        )
        task.events.append(event)
        task.status = change.status
        task.fields.update(change.fields)
        task.attempt = int(task.fields.get("attempt", task.attempt))
        if normalised is not None:
            task.normalised = normalised
        self.appended.set()
        self.appended = anyio.Event()
        return event

    async def load_upload(self, task_id: UUID) -> AudioInput:
        await anyio.lowlevel.checkpoint()
        task = self.tasks.get(task_id)
        if task is None:
            raise LookupError(f"task {task_id} has no upload")
        return task.upload

    async def load_normalised(self, task_id: UUID) -> NormalisedAudio | None:
        await anyio.lowlevel.checkpoint()
        task = self.tasks.get(task_id)
        return None if task is None else task.normalised

    async def runnable(self) -> list[TaskSnapshot]:
        await anyio.lowlevel.checkpoint()
        return [self._snapshot(t) for t in self.tasks.values() if t.status not in TERMINAL]


def _check_storable(change: Change) -> None:
    """Refuse what PostgreSQL refuses: a payload that is not JSON, text holding a NUL."""
    try:
        json.dumps(change.payload)
    except TypeError as error:
        raise ValueError(f"the payload is not JSON: {error}") from None
    if _holds_nul([change.payload, change.fields]):
        raise ValueError("text with a NUL character cannot be stored")


def _holds_nul(value: object) -> bool:
    match value:
        case str():
            return "\x00" in value
        case dict():
            return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
        case list() | tuple():
            return any(_holds_nul(item) for item in value)
        case _:
            return False


def _transcription(fields: dict[str, Any]) -> Transcription | None:
    if fields.get("transcript") is None:
        return None
    return Transcription(
        transcript=fields["transcript"],
        words=tuple(Word(**w) for w in fields.get("words") or ()),
        phonemes=tuple(Phoneme(**p) for p in fields.get("phonemes") or ()),
    )


def assert_valid_history(events: Iterable[Event]) -> None:
    """Seq 1..n without gaps, every status change allowed, one terminal event per run.

    A run starts at a ``created`` event (the first, or a retry's); a terminal event
    is the last of its run.
    """
    events = list(events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].status is Status.CREATED
    for before, after in zip(events, events[1:], strict=False):
        if after.status is not before.status:
            check_transition(before.status, after.status)
    runs: list[list[Event]] = []
    for event in events:
        if event.type is EventType.STATUS and event.status is Status.CREATED:
            runs.append([])
        runs[-1].append(event)
    for run in runs:
        terminal = [e for e in run if e.status in TERMINAL]
        assert len(terminal) <= 1, terminal
        assert not terminal or run[-1] is terminal[0]


# The stages.


@dataclass
class Block:
    """Report ``progress``, set ``entered``, wait for ``release``, then succeed or raise."""

    progress: tuple[float, ...] = ()
    then: BaseException | None = None
    entered: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)


@dataclass(frozen=True)
class Progress:
    """Report each fraction, then succeed."""

    fractions: tuple[float, ...]


#: One step of a scripted stage: "ok", an exception to raise, a Block or a Progress.
Behaviour = str | BaseException | Block | Progress
OK = "ok"


class Engine:
    """Three scripted stages sharing one count of running calls (to check capacity)."""

    def __init__(self) -> None:
        self._plans: dict[tuple[str, bytes], deque[Behaviour]] = defaultdict(deque)
        #: (stage, task key) of every call, in order.
        self.calls: list[tuple[str, bytes]] = []
        self.running = 0
        self.max_running = 0
        self.preprocessor = FakePreprocessor(self)
        self.transcriber = FakeTranscriber(self)
        self.evaluator = FakeEvaluator(self)
        self.closed = False

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.preprocessor, self.transcriber, self.evaluator, self._aclose)

    def plan(self, stage: str, key: bytes, *behaviours: Behaviour) -> None:
        """Queue behaviours for ``stage`` calls on the task whose upload is ``key``.

        Calls past the plan succeed.
        """
        self._plans[(stage, key)].extend(behaviours)

    def count(self, stage: str, key: bytes) -> int:
        return self.calls.count((stage, key))

    async def perform(
        self, stage: str, key: bytes, progress: ProgressCallback | None = None
    ) -> None:
        plan = self._plans[(stage, key)]
        behaviour: Behaviour = plan.popleft() if plan else OK
        self.calls.append((stage, key))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await anyio.lowlevel.checkpoint()
            match behaviour:
                case BaseException():
                    raise behaviour
                case Block(progress=fractions, then=then, entered=entered, release=release):
                    await _report(progress, fractions)
                    entered.set()
                    await release.wait()
                    if then is not None:
                        raise then
                case Progress(fractions=fractions):
                    await _report(progress, fractions)
        finally:
            self.running -= 1

    async def _aclose(self) -> None:
        self.closed = True


async def _report(progress: ProgressCallback | None, fractions: tuple[float, ...]) -> None:
    for fraction in fractions:
        assert progress is not None, "only the transcriber reports progress"
        await progress(fraction)


class FakePreprocessor:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def preprocess(self, audio: AudioInput) -> NormalisedAudio:
        await self._engine.perform("preprocess", audio.data)
        return NormalisedAudio(pcm=audio.data, duration=len(audio.data) / 32_000)


class FakeTranscriber:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        await self._engine.perform("transcribe", audio.pcm, progress)
        text = audio.pcm.decode()
        return Transcription(
            transcript=text,
            words=(Word(text, 0.0, 0.5, 0.9),),
            phonemes=(Phoneme("h", 0.0, 0.1), Phoneme("ə", 0.1, 0.2)),
        )


class FakeEvaluator:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return reference_text is not None or text_id is not None

    async def evaluate(
        self,
        transcription: Transcription,
        reference_text: str | None,
        text_id: UUID | None,
        audio: NormalisedAudio | None = None,
    ) -> Evaluation | None:
        await self._engine.perform("evaluate", transcription.transcript.encode())
        return Evaluation(accuracy=87.5, mistakes=[{"type": "substitution"}])


# Driving a supervisor.


def make_supervisor(
    journal: MemoryJournal,
    engine: Engine,
    *,
    clock: Callable[[], float] = lambda: 0.0,
    **config: Any,
) -> Supervisor:
    """A supervisor whose retries and journal outages cost no time."""
    settings: dict[str, Any] = {
        "capacity": 4,
        "backoff_base": 0.0,
        "journal_retry_cap": 0.0,
        "shutdown_grace": 5.0,
        **config,
    }
    return Supervisor(
        journal,
        engine.pipeline,
        SupervisorConfig(**settings),
        clock=clock,
        backoff=Backoff(base=0.0, cap=0.0),
    )


@asynccontextmanager
async def running(supervisor: Supervisor) -> AsyncIterator[TaskDoor]:
    """Run ``supervisor`` (recovery done on entry) and give its door; shut it down and
    wait for it on exit."""
    async with anyio.create_task_group() as group:
        await group.start(supervisor.run)
        try:
            yield TaskDoor(supervisor)
        finally:
            supervisor.shutdown()


async def drain(subscription: Subscription | None) -> list[Event]:
    """Every live journalled event until the actor ends the stream (queue positions,
    which are not journalled, left out)."""
    assert subscription is not None, "no actor runs the task"
    async with subscription.events:
        return [event async for event in subscription.events if isinstance(event, Event)]


async def wait_until(journal: MemoryJournal, predicate: Callable[[], bool]) -> None:
    """Wait (bound it with fail_after) until a journal write makes ``predicate`` true."""
    while not predicate():
        await journal.appended.wait()


async def reached(journal: MemoryJournal, task: UUID, status: Status) -> None:
    """Wait until ``status`` is persisted (a worker runs ahead of its actor's writes)."""
    await wait_until(journal, lambda: journal.status(task) is status)


async def gone(door: TaskDoor, task: UUID) -> None:
    """Wait until nobody here owns ``task`` (its supervision has ended)."""
    while (owned := door._ownership.get(task)) is not None:
        await owned.ended.wait()
