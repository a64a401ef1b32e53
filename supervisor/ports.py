"""The seams between the supervisor and the world, as Protocols.

The store implements ``Journal`` over PostgreSQL; tests use an in-memory one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from speech.base import AudioInput, NormalisedAudio, Transcription
from supervisor.events import Change, Event
from supervisor.lifecycle import Status


class JournalUnavailable(Exception):
    """The journal cannot be reached right now; nothing was written. Try again later."""


class StaleWrite(Exception):
    """Somebody else advanced or removed the task since it was loaded."""


class Fenced(StaleWrite):
    """The task is no longer this instance's (claimed by another, or deleted): stop
    running it and write nothing more for it."""


@dataclass(frozen=True)
class TaskSnapshot:
    """What an actor needs to resume a task from its last persisted state."""

    id: UUID
    status: Status
    seq: int
    attempt: int
    language: str
    reference_text: str | None
    text_id: UUID | None
    transcription: Transcription | None


class Journal(Protocol):
    """Durable task state: every transition is one transaction."""

    async def load(self, task_id: UUID) -> TaskSnapshot | None:
        """The task as last persisted, or None when it no longer exists."""
        ...

    async def append(
        self,
        task_id: UUID,
        after_seq: int,
        change: Change,
        normalised: NormalisedAudio | None = None,
    ) -> Event:
        """Write event ``after_seq + 1`` and update the task; StaleWrite if ``after_seq`` is old."""
        ...

    async def load_upload(self, task_id: UUID) -> AudioInput:
        """The original upload."""
        ...

    async def load_normalised(self, task_id: UUID) -> NormalisedAudio | None:
        """The decoded audio kept by an earlier run, if any."""
        ...

    async def runnable(self) -> list[TaskSnapshot]:
        """Every non-terminal task this process should run, as stored, oldest first.

        Snapshots rather than ids: recovery starts every actor from one query.
        """
        ...
