"""The task lifecycle as data: statuses, allowed transitions, what comes next.

Pure: no I/O and no ``await``. The actor asks this module what to do and the
store persists what it decided.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a task is in its life."""

    #: Accepted and persisted; no actor has looked at it yet.
    CREATED = "created"
    #: Waiting for an engine slot; its event carries the queue position.
    QUEUED = "queued"
    #: Holds an engine slot.
    STARTED = "started"
    #: Decoding the upload to 16 kHz mono.
    PREPROCESSING = "preprocessing"
    #: Recognising words and phonemes.
    TRANSCRIBING = "transcribing"
    #: Scoring against the reference text.
    EVALUATING = "evaluating"
    #: Finished with results.
    COMPLETED = "completed"
    #: Finished without results; the task's failure reason says why.
    FAILED = "failed"
    #: Stopped at the user's request.
    CANCELLED = "cancelled"


class Stage(StrEnum):
    """A unit of engine work; each has the status of the same name while it runs."""

    PREPROCESSING = "preprocessing"
    TRANSCRIBING = "transcribing"
    EVALUATING = "evaluating"


TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
RETRYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.CANCELLED})

_S = Status
#: Every allowed transition. Anything else is a bug in the caller.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    _S.CREATED: frozenset({_S.QUEUED}),
    _S.QUEUED: frozenset({_S.STARTED}),
    _S.STARTED: frozenset({_S.PREPROCESSING}),
    _S.PREPROCESSING: frozenset({_S.TRANSCRIBING}),
    _S.TRANSCRIBING: frozenset({_S.EVALUATING, _S.COMPLETED}),
    _S.EVALUATING: frozenset({_S.COMPLETED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset({_S.CREATED}),
    _S.CANCELLED: frozenset({_S.CREATED}),
}
# Any live task may fail or be cancelled.
for _status in set(Status) - TERMINAL:
    TRANSITIONS[_status] = TRANSITIONS[_status] | {_S.FAILED, _S.CANCELLED}
del _status


class TransitionError(ValueError):
    """A transition the lifecycle does not allow."""


def check_transition(current: Status, target: Status) -> None:
    """Raise TransitionError unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise TransitionError(f"{current} -> {target} is not allowed")


def is_terminal(status: Status) -> bool:
    return status in TERMINAL


def stages_to_run(status: Status, *, evaluates: bool) -> tuple[Stage, ...]:
    """The stages still to run for a task persisted in ``status``.

    A task resumes at the stage it was in: its work is idempotent and the
    outputs of finished stages are persisted with the next transition.
    """
    stages = [Stage.PREPROCESSING, Stage.TRANSCRIBING]
    if evaluates:
        stages.append(Stage.EVALUATING)
    if status in (Status.CREATED, Status.QUEUED, Status.STARTED):
        return tuple(stages)
    if is_terminal(status) or Stage(status.value) not in stages:
        return ()  # evaluating, with no evaluation configured any more: nothing is left
    return tuple(stages[stages.index(Stage(status.value)) :])


def after_stage(stage: Stage, *, evaluates: bool) -> Status:
    """The status a task moves to when ``stage`` succeeds."""
    if stage is Stage.PREPROCESSING:
        return Status.TRANSCRIBING
    if stage is Stage.TRANSCRIBING and evaluates:
        return Status.EVALUATING
    return Status.COMPLETED
