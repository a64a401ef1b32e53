"""The ILPS status vocabulary and how native statuses and events map onto it. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from supervisor.events import Event, EventType
from supervisor.lifecycle import Status


class LegacyStatus(StrEnum):
    """The statuses ILPS clients know; nothing else may appear on the legacy routes."""

    #: Accepted, or waiting for an engine slot (native ``created`` and ``queued``).
    CREATED = "created"
    #: Holds an engine slot.
    STARTED = "started"
    #: Decoding the recording.
    PREPROCESSING = "preprocessing"
    #: Recognising the phonemes.
    TRANSCRIBING = "transcribing"
    #: Scoring; the stream only (the gateway's schema lacks it).
    EVALUATING = "evaluating"
    #: Finished with results.
    COMPLETED = "completed"
    #: Finished without results (native ``failed`` and ``cancelled``).
    FAILED = "failed"
    #: A status this service does not recognise.
    UNKNOWN = "unknown"


_STREAM: dict[Status, LegacyStatus] = {
    Status.CREATED: LegacyStatus.CREATED,
    Status.QUEUED: LegacyStatus.CREATED,
    Status.STARTED: LegacyStatus.STARTED,
    Status.PREPROCESSING: LegacyStatus.PREPROCESSING,
    Status.TRANSCRIBING: LegacyStatus.TRANSCRIBING,
    Status.EVALUATING: LegacyStatus.EVALUATING,
    Status.COMPLETED: LegacyStatus.COMPLETED,
    Status.FAILED: LegacyStatus.FAILED,
    Status.CANCELLED: LegacyStatus.FAILED,
}
#: Where a legacy stream ends.
FINAL = frozenset({LegacyStatus.COMPLETED, LegacyStatus.FAILED})


def stream_status(native: str) -> LegacyStatus:
    """The status the legacy stream shows for a native one."""
    try:
        return _STREAM[Status(native)]
    except ValueError:
        return LegacyStatus.UNKNOWN


def gateway_status(native: str) -> LegacyStatus:
    """The status ``POST /`` and ``POST /{uuid}`` show: the gateway's schema has no evaluating."""
    status = stream_status(native)
    return LegacyStatus.TRANSCRIBING if status is LegacyStatus.EVALUATING else status


@dataclass(frozen=True)
class StatusUpdate:
    """One legacy ``status_updated`` event; ``seq`` is the native status event's journal seq."""

    seq: int
    status: LegacyStatus

    @property
    def final(self) -> bool:
        return self.status in FINAL


class StatusTracker:
    """Folds native events into legacy status changes: progress and retry events are not
    changes, and consecutive native statuses with the same legacy status make one change."""

    def __init__(self) -> None:
        self.current: StatusUpdate | None = None

    def feed(self, event: Event) -> StatusUpdate | None:
        if event.type is not EventType.STATUS:
            return None
        status = stream_status(event.status)
        if self.current is not None and self.current.status is status:
            return None
        self.current = StatusUpdate(event.seq, status)
        return self.current


def opening_updates(tracker: StatusTracker, replay: list[Event], after: int) -> list[StatusUpdate]:
    """What a stream sends from the journal: the current status, or (``after`` > 0, a
    reconnect) every change after that seq.

    The final statuses of a retried task's earlier attempts are in the journal too:
    only the last update, if final, is where the stream may end.
    """
    changes = [update for event in replay if (update := tracker.feed(event)) is not None]
    if after <= 0:
        return [tracker.current] if tracker.current is not None else []
    return [update for update in changes if update.seq > after]
