"""What an actor's mailbox carries: one frozen dataclass per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

from speech.base import Evaluation, NormalisedAudio, Transcription
from supervisor.events import Broadcast
from supervisor.fanout import Fanout
from supervisor.lifecycle import Stage

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer from the actor to the task that asked."""

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._value: list[T] = []

    @property
    def answered(self) -> bool:
        return bool(self._value)

    def set(self, value: T) -> None:
        """Answer once; later answers are ignored (the first one is the truth)."""
        if not self._value:
            self._value.append(value)
            self._ready.set()

    async def wait(self) -> T:
        await self._ready.wait()
        return self._value[0]


@dataclass(frozen=True)
class Subscription:
    """A live feed: every event after ``seq`` arrives on ``events``, in order, with a
    ``QueuePosition`` (no seq) whenever a waiting task's place in the queue moves.

    ``seq`` None: a feed of a task run by another instance, which carries every event
    persisted from the moment of subscribing on (and some before: skip what was seen).
    """

    seq: int | None
    events: ObjectReceiveStream[Broadcast]
    source: Fanout = field(compare=False, repr=False)

    @property
    def deleted(self) -> bool:
        """The feed ended because the task was deleted: no reconnect will find it."""
        return self.source.deleted


# Requests from outside: HTTP handlers and the supervisor.


@dataclass(frozen=True)
class Subscribe:
    """Register a subscriber and learn the last broadcast seq in one step (no gap, no dup).

    The reply is None when the actor ended before it could serve the request.
    """

    reply: Reply[Subscription | None] = field(default_factory=Reply, compare=False)


class CancelOutcome(StrEnum):
    """What became of a cancel request."""

    #: ``cancelled`` is persisted.
    CANCELLED = "cancelled"
    #: The task had already ended (or is gone): nothing was written.
    ENDED = "ended"
    #: The journal could not be reached: nothing was written; the caller may try again.
    UNAVAILABLE = "unavailable"
    #: Another instance took the task over before this one could carry it out: the
    #: door asks its new owner (never an answer to a client).
    MOVED = "moved"


#: Why a task was cancelled when its owner asked (the reason it is journalled with).
BY_THE_USER = "cancelled by the user"


@dataclass(frozen=True)
class Cancel:
    """Stop the task's work and persist ``cancelled``; the reply comes once it is persisted."""

    reason: str = BY_THE_USER
    reply: Reply[CancelOutcome] = field(default_factory=Reply, compare=False)


@dataclass(frozen=True)
class Stop:
    """Leave at a safe point, persisting nothing: the task resumes on the next start.

    ``deleted``: the task is being deleted; its streams are told so before they end.
    """

    deleted: bool = False


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
class Journalled:
    """Answered once every report posted before it is journalled: the actor serves its
    mailbox in order. The worker waits for it before engine work, so that an instance
    whose writes are refused (the task taken over) calls no engine for it again."""

    reply: Reply[None] = field(default_factory=Reply, compare=False)


@dataclass(frozen=True)
class StageFailed:
    stage: Stage
    reason: str
    #: The class of the failure, for metrics (``supervisor.facts``): never the reason's text.
    failure: str = "permanent"


#: What the door sends an actor.
Command = Subscribe | Cancel | Stop
#: What a worker posts to its actor.
Report = (
    Queued
    | SlotGranted
    | StageEntered
    | StageProgress
    | RetryScheduled
    | StageSucceeded
    | StageFailed
)
#: Everything a mailbox carries.
Message = Command | Report | Journalled
