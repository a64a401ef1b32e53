"""One contract for both journals: the in-memory fake must behave as PostgreSQL does.

The supervisor tests trust ``MemoryJournal``; every test here runs against it and
against ``PgJournal`` on a real server, so a difference between them fails here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import pytest
from sqlalchemy import URL

from speech.base import AudioInput, NormalisedAudio, Phoneme, Transcription, Word
from store.database import open_database
from store.journal import PgJournal
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from supervisor.events import Change, EventType
from supervisor.lifecycle import Stage, Status
from supervisor.messages import StageSucceeded
from supervisor.ports import Journal, StaleWrite
from supervisor.transitions import cancelled, change_for, requeued
from tests.fakes import MemoryJournal

pytestmark = pytest.mark.anyio

UPLOAD = AudioInput(b"RIFF-pcm-bytes", "audio/x-wav", "take one.wav", 44_100, 2)
TEXT_ID = uuid.UUID("5a1d0000-0000-4000-8000-000000000001")


class Tasks(Protocol):
    """How a test puts tasks where its journal reads them, as the HTTP layer does."""

    async def add(self, upload: AudioInput, *, reference_text: str | None = None) -> uuid.UUID:
        """A new task in ``created`` at seq 1, language en-US, text_id TEXT_ID."""
        ...

    async def delete(self, task_id: uuid.UUID) -> None: ...


@dataclass
class Subject:
    journal: Journal
    tasks: Tasks


class MemoryTasks:
    def __init__(self, journal: MemoryJournal) -> None:
        self._journal = journal

    async def add(self, upload: AudioInput, *, reference_text: str | None = None) -> uuid.UUID:
        return self._journal.add_task(upload=upload, reference_text=reference_text, text_id=TEXT_ID)

    async def delete(self, task_id: uuid.UUID) -> None:
        self._journal.delete(task_id)


class PgTasks:
    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._user = uuid.uuid4()

    async def add(self, upload: AudioInput, *, reference_text: str | None = None) -> uuid.UUID:
        task = NewTask(self._user, "title", "en-US", TEXT_ID, reference_text)
        digest = hashlib.sha256(upload.data).hexdigest()
        stored = NewUpload(
            upload.data,
            upload.filename,
            upload.content_type,
            digest,
            upload.sample_rate,
            upload.channels,
        )
        task_id, created = await self._store.create(task, stored)
        assert created
        return task_id

    async def delete(self, task_id: uuid.UUID) -> None:
        assert await self._store.delete(self._user, task_id)


@pytest.fixture(params=["memory", "postgres"])
def server(request: pytest.FixtureRequest) -> URL | None:
    """None for the in-memory journal, else the database of the PostgreSQL one.

    Outside the event loop: the database fixture creates its database with anyio.run.
    """
    if request.param == "memory":
        return None
    url: URL = request.getfixturevalue("service_database_url")
    return url


@pytest.fixture
async def subject(server: URL | None) -> AsyncIterator[Subject]:
    """Each journal, with a way to create and delete its tasks."""
    if server is None:
        memory = MemoryJournal()
        yield Subject(memory, MemoryTasks(memory))
        return
    async with open_database(server, pool_size=2) as database:
        yield Subject(PgJournal(database), PgTasks(TaskStore(database)))


def status(to: Status) -> Change:
    return Change(EventType.STATUS, to)


TRANSCRIPTION = Transcription(
    "it was the best",
    words=(Word("it", 0.0, 0.2, 0.9), Word("was", 0.2, 0.4, 0.8)),
    phonemes=(Phoneme("ɪ", 0.0, 0.1), Phoneme("t", 0.1, 0.2)),
)


async def test_a_new_task_loads_as_created_at_seq_1(subject: Subject) -> None:
    task_id = await subject.tasks.add(UPLOAD, reference_text="It was the best")
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.id, snapshot.status, snapshot.seq, snapshot.attempt) == (
        task_id,
        Status.CREATED,
        1,
        1,
    )
    assert (snapshot.language, snapshot.reference_text, snapshot.text_id) == (
        "en-US",
        "It was the best",
        TEXT_ID,
    )
    assert snapshot.transcription is None


async def test_an_unknown_task_loads_as_none(subject: Subject) -> None:
    assert await subject.journal.load(uuid.uuid4()) is None


async def test_append_writes_the_next_seq_and_moves_the_task(subject: Subject) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    queued = await subject.journal.append(
        task_id, 1, Change(EventType.STATUS, Status.QUEUED, {"position": 3})
    )
    assert (queued.task_id, queued.seq, queued.type, queued.status, queued.payload) == (
        task_id,
        2,
        EventType.STATUS,
        Status.QUEUED,
        {"position": 3},
    )
    assert queued.created_at.tzinfo is not None
    progress = await subject.journal.append(
        task_id, 2, Change(EventType.PROGRESS, Status.QUEUED, {"percent": 50.0})
    )
    assert (progress.seq, progress.type) == (3, EventType.PROGRESS)
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == (Status.QUEUED, 3)


@pytest.mark.parametrize("after_seq", [0, 1, 3], ids=["behind", "already-written", "ahead"])
async def test_append_at_any_seq_but_the_last_is_a_stale_write_that_writes_nothing(
    subject: Subject, after_seq: int
) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    await subject.journal.append(task_id, 1, status(Status.QUEUED))
    audio = NormalisedAudio(b"\x01\x00" * 8, 0.5)
    with pytest.raises(StaleWrite):
        await subject.journal.append(task_id, after_seq, status(Status.STARTED), audio)
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == (Status.QUEUED, 2)
    assert await subject.journal.load_normalised(task_id) is None


async def test_normalised_audio_is_kept_with_its_transition_and_after(subject: Subject) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    assert await subject.journal.load_normalised(task_id) is None
    audio = NormalisedAudio(b"\x01\x00\x02\x00" * 40, 0.01)
    await subject.journal.append(task_id, 1, status(Status.PREPROCESSING), audio)
    await subject.journal.append(task_id, 2, status(Status.TRANSCRIBING))
    assert await subject.journal.load_normalised(task_id) == audio


async def test_a_transcription_loads_back_and_a_retry_clears_it(subject: Subject) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    transcribed = change_for(
        StageSucceeded(Stage.TRANSCRIBING, TRANSCRIPTION), Status.TRANSCRIBING, evaluates=True
    )
    await subject.journal.append(task_id, 1, transcribed)
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.transcription) == (Status.EVALUATING, TRANSCRIPTION)
    await subject.journal.append(task_id, 2, cancelled("by the test"))
    await subject.journal.append(task_id, 3, requeued(2))
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq, snapshot.attempt) == (Status.CREATED, 4, 2)
    assert snapshot.transcription is None


async def test_load_upload_returns_the_upload_as_sent(subject: Subject) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    assert await subject.journal.load_upload(task_id) == UPLOAD


async def test_runnable_lists_the_live_tasks_oldest_first_as_stored(subject: Subject) -> None:
    first, finished, running, last = [await subject.tasks.add(UPLOAD) for _ in range(4)]
    await subject.journal.append(finished, 1, cancelled("by the test"))
    await subject.journal.append(running, 1, status(Status.QUEUED))
    await subject.journal.append(running, 2, status(Status.STARTED))
    runnable = await subject.journal.runnable()  # each test has a database of its own
    assert [s.id for s in runnable] == [first, running, last]
    assert runnable == [await subject.journal.load(s.id) for s in runnable]


async def test_a_deleted_task_is_gone_from_every_read_and_refuses_writes(
    subject: Subject,
) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    audio = NormalisedAudio(b"\x01\x00" * 8, 0.5)
    await subject.journal.append(task_id, 1, status(Status.PREPROCESSING), audio)
    await subject.tasks.delete(task_id)
    assert await subject.journal.load(task_id) is None
    assert await subject.journal.load_normalised(task_id) is None
    with pytest.raises(LookupError) as missing:
        await subject.journal.load_upload(task_id)
    assert missing.type is LookupError  # not a KeyError, whose text is the bare key
    with pytest.raises(StaleWrite):
        await subject.journal.append(task_id, 2, status(Status.TRANSCRIBING))
    assert task_id not in {s.id for s in await subject.journal.runnable()}


#: What a journal raises for a change PostgreSQL cannot store (the fake: ValueError).
UNSTORABLE = (ValueError, asyncpg.DataError)


@pytest.mark.parametrize(
    "change",
    [
        Change(EventType.STATUS, Status.QUEUED, {"at": uuid.UUID(int=1)}),
        Change(EventType.RETRY, Status.QUEUED, {"error": "engine said a\x00b"}),
        Change(EventType.STATUS, Status.FAILED, {}, {"failure_reason": "a\x00b"}),
    ],
    ids=["payload-not-json", "nul-in-payload", "nul-in-column"],
)
async def test_a_change_postgresql_cannot_store_is_refused_and_writes_nothing(
    subject: Subject, change: Change
) -> None:
    task_id = await subject.tasks.add(UPLOAD)
    with pytest.raises(UNSTORABLE):
        await subject.journal.append(task_id, 1, change)
    snapshot = await subject.journal.load(task_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == (Status.CREATED, 1)
