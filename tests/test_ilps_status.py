"""The legacy status vocabulary and the stream's fold over native events (pure, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from supervisor.events import Event, EventType
from supervisor.lifecycle import Status
from web.ilps_status import (
    LegacyStatus,
    StatusTracker,
    gateway_status,
    opening_updates,
    stream_status,
)

TASK = uuid.uuid4()
S, T = EventType.STATUS, EventType


def journal(*steps: tuple[EventType, Status]) -> list[Event]:
    now = datetime.now(UTC)
    return [Event(TASK, i, kind, status, {}, now) for i, (kind, status) in enumerate(steps, 1)]


#: created, queued, started, preprocessing, a progress, transcribing, a retry, completed.
RUN = journal(
    (S, Status.CREATED),
    (S, Status.QUEUED),
    (S, Status.STARTED),
    (S, Status.PREPROCESSING),
    (T.PROGRESS, Status.PREPROCESSING),
    (S, Status.TRANSCRIBING),
    (T.RETRY, Status.TRANSCRIBING),
    (S, Status.COMPLETED),
)


@pytest.mark.parametrize(
    ("native", "stream", "gateway"),
    [
        ("created", "created", "created"),
        ("queued", "created", "created"),
        ("evaluating", "evaluating", "transcribing"),
        ("cancelled", "failed", "failed"),
        ("completed", "completed", "completed"),
        ("paused", "unknown", "unknown"),
    ],
)
def test_the_mapping(native: str, stream: str, gateway: str) -> None:
    assert stream_status(native) == stream
    assert gateway_status(native) == gateway


def test_one_event_per_legacy_change_with_the_native_seq() -> None:
    tracker = StatusTracker()
    updates = [u for e in RUN if (u := tracker.feed(e)) is not None]
    assert [(u.seq, u.status.value) for u in updates] == [
        (1, "created"),
        (3, "started"),
        (4, "preprocessing"),
        (6, "transcribing"),
        (8, "completed"),
    ]
    assert updates[-1].final


@pytest.mark.parametrize("upto", range(1, len(RUN) + 1))
def test_a_new_stream_opens_with_the_current_status(upto: int) -> None:
    (first,) = opening_updates(StatusTracker(), RUN[:upto], after=0)
    expected = {1: "created", 2: "created", 3: "started", 4: "preprocessing", 5: "preprocessing"}
    assert first.status == expected.get(upto, "transcribing" if upto < 8 else "completed")


@pytest.mark.parametrize("after", range(1, len(RUN) + 1))
def test_a_reconnect_gets_only_the_changes_after_its_seq(after: int) -> None:
    opened = opening_updates(StatusTracker(), RUN, after=after)
    assert [u.seq for u in opened] == [s for s in (3, 4, 6, 8) if s > after]


def test_a_reconnect_passes_an_earlier_attempts_end_of_a_retried_task() -> None:
    retried = journal(
        (S, Status.CREATED),
        (S, Status.QUEUED),
        (S, Status.CANCELLED),
        (S, Status.CREATED),
        (S, Status.QUEUED),
        (S, Status.STARTED),
    )
    # The first attempt's end is passed through: the task lives on (the stream ends
    # only where the last update is final).
    opened = opening_updates(StatusTracker(), retried, after=1)
    assert [(u.seq, u.status.value) for u in opened] == [
        (3, "failed"),
        (4, "created"),
        (6, "started"),
    ]
    assert not opened[-1].final
    opened = opening_updates(StatusTracker(), retried, after=3)
    assert [(u.seq, u.status.value) for u in opened] == [(4, "created"), (6, "started")]
    (now,) = opening_updates(StatusTracker(), retried, after=0)
    assert (now.seq, now.status) == (6, LegacyStatus.STARTED)
