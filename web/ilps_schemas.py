"""The JSON of the ILPS legacy routes: what the gateway sends and what it re-validates."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError

from store.records import TaskRecord, TaskSummary
from supervisor.lifecycle import Status
from web.ilps_status import LegacyStatus, gateway_status

M = TypeVar("M", bound=BaseModel)

#: The ``text_id`` of tasks created without one (natively): the gateway requires a UUID.
NO_TEXT_ID = UUID(int=0)


class Unprocessable(Exception):
    """A request that fails validation: 422 with FastAPI's ``{"detail": [...]}`` shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("the request is not valid")
        self.errors = errors


def parse(model: type[M], raw: bytes | dict[str, Any], where: str) -> M:
    """Validate JSON bytes or a dict; errors are located under ``where`` (body, path)."""
    try:
        if isinstance(raw, bytes):
            return model.model_validate_json(raw)
        return model.model_validate(raw)
    except ValidationError as error:
        details = [
            {"type": e["type"], "loc": [where, *e["loc"]], "msg": e["msg"]}
            for e in error.errors(include_url=False)
        ]
        raise Unprocessable(details) from None


class UserIn(BaseModel):
    """The body of ``POST /``, ``POST /{uuid}`` and ``POST /{uuid}/stream``."""

    user_id: UUID


class PathIn(BaseModel):
    uuid: UUID


class TranscribeIn(BaseModel):
    """The text fields of ``POST /transcribe`` beside the ``file`` part."""

    title: str = Field(max_length=50)
    user_id: UUID
    text_id: UUID


class CreatedOut(BaseModel):
    id: UUID


def _accuracy(value: float | None) -> float | None:
    """0..100 rounded to 2 decimals, or None: the gateway refuses anything else."""
    if value is None or math.isnan(value):
        return None
    return min(max(round(value, 2), 0.0), 100.0)


class TaskItemOut(BaseModel):
    id: UUID
    status: LegacyStatus
    title: str = Field(max_length=50)
    accuracy: float | None = Field(ge=0, le=100)
    created_at: datetime

    @classmethod
    def of(cls, summary: TaskSummary) -> TaskItemOut:
        return cls(
            id=summary.id,
            status=gateway_status(summary.status),
            title=summary.title[:50],
            accuracy=_accuracy(summary.accuracy),
            created_at=summary.created_at,
        )


def comment_of(status: str, failure_reason: str | None) -> str | None:
    """The failure reason; a cancelled task (failed here) says it was cancelled."""
    if status == Status.CANCELLED:
        return "The task was cancelled" + (f" ({failure_reason})." if failure_reason else ".")
    return failure_reason if status == Status.FAILED else None


class TaskDetailOut(BaseModel):
    id: UUID
    title: str = Field(max_length=50)
    text_id: UUID
    status: LegacyStatus
    result: str | None
    accuracy: float | None = Field(ge=0, le=100)
    #: Always a list, empty when the task was not scored: the Android app filters it
    #: without a null check (ILPS-CONTRACT.md).
    mistakes: list[dict[str, Any]]
    comment: str | None

    @classmethod
    def of(cls, record: TaskRecord) -> TaskDetailOut:
        return cls(
            id=record.id,
            title=record.title[:50],
            text_id=record.text_id or NO_TEXT_ID,
            status=gateway_status(record.status),
            result=record.result,
            accuracy=_accuracy(record.accuracy),
            mistakes=record.mistakes or [],
            comment=comment_of(record.status, record.failure_reason),
        )


#: The reconnect delay ILPS clients are told: the SSE ``retry:`` line and each event's data.
RETRY_MS = 15_000


def status_updated(task_id: UUID, status: LegacyStatus) -> dict[str, Any]:
    """The ``data`` of each legacy stream event, exactly as ILPS clients parse it."""
    return {
        "event": "status_updated",
        "task_id": str(task_id),
        "status": status.value,
        "retry": RETRY_MS,
    }
