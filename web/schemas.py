"""The JSON the task routes answer with, as pydantic models (also the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter

from store.records import TaskRecord
from store.tasks import Page
from supervisor.lifecycle import Status


class ErrorOut(BaseModel):
    error: str = Field(description="A stable machine-readable code")
    detail: str = Field(description="What went wrong, for a person")


class WordOut(BaseModel):
    text: str
    start: float
    end: float
    confidence: float


class PhonemeOut(BaseModel):
    ipa: str
    start: float
    end: float
    word: int | None = Field(
        None, description="Index in `words` of the word it was heard in (null: between words)"
    )


class SegmentOut(BaseModel):
    text: str
    start: float
    end: float


class TaskSummaryOut(BaseModel):
    id: UUID
    title: str
    status: Status
    accuracy: float | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class TaskOut(BaseModel):
    id: UUID
    title: str
    status: Status
    attempt: int = Field(description="How many times the task has run (retry adds one)")
    language: str = Field(
        description="As asked; for `auto`, the language detected once transcribed"
    )
    text_id: UUID | None
    reference_text: str | None
    duration: float | None = Field(description="Seconds of audio, once decoded")
    transcript: str | None = Field(description="The recognised words")
    result: str | None = Field(description="IPA phonemes separated by spaces")
    words: list[WordOut] | None
    phonemes: list[PhonemeOut] | None
    segments: list[SegmentOut] = Field(
        description="The transcript in stretches with times, as the transcriber wrote it "
        "(empty when it gives none)"
    )
    accuracy: float | None = Field(description="0..100 against the reference, when scored")
    mistakes: list[dict[str, Any]] | None = Field(description="ILPS-shaped phoneme mistakes")
    evaluation: dict[str, Any] | None = Field(
        description=(
            "Per-word view: `words` (word, written, index, start, end, score 0-100, "
            "verdict correct|mispronounced|missed, expected and heard IPA, known, "
            "phonemes with ipa, heard where it differs, start, end, score), "
            "`unknown_words`, `reference_ipa`, and when the text was aligned to the audio "
            "(`method` = gop or ctc-gop): `completeness` (0-100, share of the text read), "
            "`inserted` (word, start, end, heard), `mistakes` (word, index, start, end, type, "
            "expected, heard) and `other_text` (true: the recording is a reading of another "
            "text, every word missed); a word replaced by another may carry `heard_word`, "
            "what the transcriber heard in its place"
        )
    )
    failure_reason: str | None
    webhook_url: str | None = Field(None, description="Where this task's webhooks go")
    queue_position: int | None = Field(
        None,
        description="While queued: the place in the engine queue now (1 = next, 0 = its"
        " turn has come; the stream's latest `position` event says the same); for a"
        " created task no instance has room for yet, its place in the cluster's queue",
    )
    last_event_id: int = Field(description="The seq of the newest event")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, record: TaskRecord, queue_position: int | None = None) -> TaskOut:
        # vars, not dataclasses.asdict: asdict deep-copies every value (a quarter of a
        # request's CPU once), and validation builds new objects anyway.
        fields = dict(vars(record))
        fields["last_event_id"] = fields.pop("last_seq")
        fields["queue_position"] = queue_position
        fields["segments"] = fields["segments"] or []
        return cls.model_validate(fields)


class TaskListOut(BaseModel):
    items: list[TaskSummaryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


_PAGE = TypeAdapter(Page)


def page_json(page: Page) -> bytes:
    """The page as ``TaskListOut`` JSON, written straight from the store's records.

    No validation pass: the records come from our own database, and building a
    model per line and then dumping it was half of a list request's CPU. A test
    holds this output to ``TaskListOut``, which is what the OpenAPI document shows.
    """
    return _PAGE.dump_json(page)


class EventOut(BaseModel):
    """The ``data`` of each SSE event on ``/tasks/{id}/events`` (``id:`` is the seq)."""

    task_id: UUID
    seq: int
    type: str = Field(description="status, progress or retry")
    status: Status
    payload: dict[str, Any]
    created_at: datetime


class AcceptedOut(BaseModel):
    id: UUID
    status: Status
