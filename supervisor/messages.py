"""What an actor's mailbox carries: one frozen dataclass per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

from speech.base import Evaluation, NormalisedAudio, Transcription
from supervisor.events import Event
from supervisor.lifecycle import Stage

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer from the actor to the task that asked."""

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._value: list[T] = []

    def set(self, value: T) -> None:
        self._value.append(value)
        self._ready.set()

    async def wait(self) -> T:
        await self._ready.wait()
        return self._value[0]


@dataclass(frozen=True)
class Subscription:
    """A live feed: every event after ``seq`` arrives on ``events``, in order."""

    seq: int
    events: ObjectReceiveStream[Event]


# Requests from outside: HTTP handlers and the supervisor.


@dataclass(frozen=True)
class Subscribe:
    """Register a subscriber and learn the last broadcast seq in one step (no gap, no dup).

    The reply is None when the actor ended before it could serve the request.
    """

    reply: Reply[Subscription | None] = field(default_factory=Reply, compare=False)


@dataclass(frozen=True)
class Cancel:
    """Stop the task's work and persist ``cancelled``."""

    reason: str = "cancelled by the user"


@dataclass(frozen=True)
class Stop:
    """Leave at a safe point, persisting nothing: the task resumes on the next start."""


# Reports from the actor's own worker.


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class SlotGranted:
    pass


@dataclass(frozen=True)
class StageEntered:
    stage: Stage


@dataclass(frozen=True)
class StageProgress:
    stage: Stage
    fraction: float


@dataclass(frozen=True)
class RetryScheduled:
    stage: Stage
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True)
class StageSucceeded:
    stage: Stage
    output: NormalisedAudio | Transcription | Evaluation | None
    #: False when the output was already in the journal (decoded audio kept from a past run).
    fresh: bool = True


@dataclass(frozen=True)
class StageFailed:
    stage: Stage
    reason: str


Message = (
    Subscribe
    | Cancel
    | Stop
    | Queued
    | SlotGranted
    | StageEntered
    | StageProgress
    | RetryScheduled
    | StageSucceeded
    | StageFailed
)
