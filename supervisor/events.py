"""Task events: what the journal records and subscribers receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from supervisor.lifecycle import Status


class EventType(StrEnum):
    """Why an event was written."""

    #: The task's status changed.
    STATUS = "status"
    #: A stage reported how far it got; the status is unchanged.
    PROGRESS = "progress"
    #: A stage failed transiently and will be tried again after a delay.
    RETRY = "retry"


@dataclass(frozen=True)
class Event:
    """One journal entry; ``seq`` counts 1, 2, 3... per task with no gaps."""

    task_id: UUID
    seq: int
    type: EventType
    status: Status
    payload: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The event as clients see it."""
        return {
            "task_id": str(self.task_id),
            "seq": self.seq,
            "type": self.type.value,
            "status": self.status.value,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Change:
    """One transition to persist: an event plus the task columns it updates."""

    type: EventType
    status: Status
    payload: dict[str, Any] = field(default_factory=dict)
    #: Task columns to set in the same transaction (results, timestamps, reason).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueuePosition:
    """A waiting task's place in its instance's engine queue moved (1 = next; when its
    turn comes, its next status says so). Not journalled: it is news only while it is
    true, so it carries no seq, and a reconnecting client is told the current place
    instead of a history."""

    task_id: UUID
    position: int

    def as_json(self) -> dict[str, Any]:
        """The place as clients see it (the data of an ``event: position``)."""
        return {"task_id": str(self.task_id), "status": "queued", "position": self.position}


#: What a task's subscribers receive: its journalled events and, while it waits, where
#: it stands.
Broadcast = Event | QueuePosition
