"""Plain records the store hands to the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from supervisor.lifecycle import Status
from supervisor.ports import TaskSnapshot
from supervisor.stages.base import Phoneme, Transcription, Word


@dataclass(frozen=True)
class NewUpload:
    """An accepted upload, checked and ready to store."""

    data: bytes
    filename: str
    content_type: str
    sha256: str
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class NewTask:
    user_id: UUID
    title: str
    language: str
    text_id: UUID | None = None
    reference_text: str | None = None
    idempotency_key: str | None = None


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
    accuracy: float | None
    mistakes: list[dict[str, Any]] | None
    evaluation: dict[str, Any] | None
    failure_reason: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    duration: float | None = None

    def snapshot(self) -> TaskSnapshot:
        """What an actor needs to run this task, without loading it again."""
        return TaskSnapshot(
            id=self.id,
            status=Status(self.status),
            seq=self.last_seq,
            attempt=self.attempt,
            language=self.language,
            reference_text=self.reference_text,
            text_id=self.text_id,
            transcription=transcription_of(self.transcript, self.words, self.phonemes),
        )


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


def transcription_of(
    transcript: str | None,
    words: list[dict[str, Any]] | None,
    phonemes: list[dict[str, Any]] | None,
) -> Transcription | None:
    """A stored transcription back as the stages' value; None when there is none yet."""
    if transcript is None:
        return None
    return Transcription(
        transcript=transcript,
        words=tuple(Word(**w) for w in words or ()),
        phonemes=tuple(Phoneme(**p) for p in phonemes or ()),
    )
