"""Plain records the store hands to the HTTP layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from speech.base import Phoneme, Transcription, Word
from supervisor.lifecycle import Status
from supervisor.ports import TaskSnapshot


class UploadBody(Protocol):
    """An upload's bytes, read in chunks (from a spool on disk): never held whole."""

    size: int

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes from the first, a chunk at a time (each call starts again)."""
        ...


@dataclass(frozen=True)
class NewUpload:
    """An accepted upload, checked and ready to store."""

    #: The bytes, or where to read them from in chunks (a large upload).
    data: bytes | UploadBody
    filename: str
    content_type: str
    sha256: str
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else self.data.size


@dataclass(frozen=True)
class NewTask:
    user_id: UUID
    title: str
    language: str
    text_id: UUID | None = None
    reference_text: str | None = None
    idempotency_key: str | None = None
    #: Where this task's webhooks go (besides the service-wide URL), checked already.
    webhook_url: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored, results included."""

    id: UUID
    user_id: UUID
    title: str
    text_id: UUID | None
    reference_text: str | None
    language: str
    status: str
    attempt: int
    last_seq: int
    transcript: str | None
    result: str | None
    words: list[dict[str, Any]] | None
    phonemes: list[dict[str, Any]] | None
    segments: list[dict[str, Any]] | None
    accuracy: float | None
    mistakes: list[dict[str, Any]] | None
    evaluation: dict[str, Any] | None
    failure_reason: str | None
    webhook_url: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    duration: float | None = None

    def snapshot(self) -> TaskSnapshot:
        """What an actor needs to run this task, without loading it again."""
        return snapshot_of(self)


@dataclass(frozen=True)
class TaskSummary:
    """A line of a task list."""

    id: UUID
    title: str
    status: str
    accuracy: float | None
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None


@dataclass(frozen=True)
class StoredAudio:
    data: bytes
    filename: str
    content_type: str


class _TaskColumns(Protocol):
    """The task columns a snapshot is made of: a TaskRecord or a result row (read-only)."""

    @property
    def id(self) -> UUID: ...

    @property
    def status(self) -> str: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    @property
    def language(self) -> str: ...

    @property
    def reference_text(self) -> str | None: ...

    @property
    def text_id(self) -> UUID | None: ...

    @property
    def transcript(self) -> str | None: ...

    @property
    def words(self) -> list[dict[str, Any]] | None: ...

    @property
    def phonemes(self) -> list[dict[str, Any]] | None: ...


def snapshot_of(task: _TaskColumns) -> TaskSnapshot:
    """The task as an actor resumes it, from its stored columns."""
    transcription = None
    if task.transcript is not None:
        transcription = Transcription(
            transcript=task.transcript,
            words=tuple(Word(**w) for w in task.words or ()),
            phonemes=tuple(Phoneme(**p) for p in task.phonemes or ()),
        )
    return TaskSnapshot(
        id=task.id,
        status=Status(task.status),
        seq=task.last_seq,
        attempt=task.attempt,
        language=task.language,
        reference_text=task.reference_text,
        text_id=task.text_id,
        transcription=transcription,
    )
