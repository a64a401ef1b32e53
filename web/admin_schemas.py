"""The JSON the operator's routes answer with (also their OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from supervisor.lifecycle import Status
from web.params import Instant
from web.schemas import EventOut, TaskOut


class OverviewOut(BaseModel):
    queue_depth: int = Field(description="Tasks waiting for an engine slot now")
    running: dict[str, int] = Field(description="Tasks in each working status (stage)")
    by_status: dict[str, int] = Field(description="Every task, counted by status")
    failed: int = Field(description="Tasks that ended failed")
    actor_restarts: int = Field(description="Actor restarts after a crash since the start")


class AdminTaskOut(BaseModel):
    id: UUID
    user_id: UUID
    title: str
    status: Status
    attempt: int
    accuracy: float | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class AdminTaskListOut(BaseModel):
    items: list[AdminTaskOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class AdminTaskDetailOut(TaskOut):
    user_id: UUID


class TimelineOut(BaseModel):
    events: list[EventOut] = Field(description="Every event of the task, oldest first")


class BulkRetryIn(BaseModel):
    """Which failed tasks to run again; every field narrows the set."""

    user_id: UUID | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None


class BulkRetryOut(BaseModel):
    matched: int = Field(description="Failed tasks that matched (at most 500 per call)")
    retried: list[UUID] = Field(description="Those now queued again")
