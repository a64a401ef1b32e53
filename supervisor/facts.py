"""The lifecycle facts of a task: each one is an info line and the metrics it moves.

The call sites are single lines in the supervisor, the door and the routes; nothing
here allocates beyond the log record (when the level lets it through) and a counter.
It speaks the task's vocabulary (``Status``, ``Event``), so it lives with it; ``ops``
below keeps only what knows no task (metrics, log formats).
"""

from __future__ import annotations

import logging
from uuid import UUID

from ops import metrics
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status, is_terminal

#: The logger's name is the one the README documents and operators filter on: it stays
#: ``ops.lifecycle``, where this module used to live.
log = logging.getLogger("ops.lifecycle")

#: One series per status, made once: ``labels()`` takes a lock on every call.
_TRANSITIONS = {status: metrics.TRANSITIONS.labels(status.value) for status in Status}

#: The classes of failure (``stm_task_failures_total{class}``): never the free-text reason.
PERMANENT = "permanent"
RETRIES_EXHAUSTED = "retries_exhausted"
TIMED_OUT = "timed_out"
CRASHED = "crashed"


def task_created(task_id: UUID, user_id: UUID) -> None:
    metrics.TASKS_CREATED.inc()
    _TRANSITIONS[Status.CREATED].inc()
    log.info(
        "task created",
        extra={"task_id": task_id, "user_id": user_id, "attempt": 1, "status": "created"},
    )


def persisted(
    event: Event,
    *,
    previous: Status | None,
    attempt: int | None,
    seconds: float | None = None,
    failure: str | None = None,
) -> None:
    """A journal entry was written: a status change, a retry scheduled (progress: nothing).

    ``seconds`` is how long the task was in ``previous``; ``failure`` the class of a failure.
    """
    status = event.status
    if event.type is EventType.RETRY:
        stage = event.payload.get("stage")
        metrics.RETRIES.labels(stage).inc()
        log.info(
            "retry scheduled: %s",
            event.payload.get("error"),
            extra={
                "task_id": event.task_id,
                "attempt": attempt,
                "status": status,
                "stage": stage,
                "delay": event.payload.get("delay"),
            },
        )
        return
    if event.type is not EventType.STATUS or status is previous:
        return
    _TRANSITIONS[status].inc()
    extra = {
        "task_id": event.task_id,
        "attempt": attempt,
        "status": status,
        "previous": previous,
        "seconds": None if seconds is None else round(seconds, 3),
    }
    if not is_terminal(status):
        log.info("status %s -> %s", previous or "?", status, extra=extra)
        return
    metrics.OUTCOMES.labels(status.value).inc()
    reason = event.payload.get("reason")
    if status is Status.FAILED:
        stage = event.payload.get("stage") or (previous.value if previous else "none")
        failure = failure or PERMANENT
        metrics.FAILURES.labels(stage, failure).inc()
        log.info("task failed: %s", reason, extra={**extra, "failure": failure, "reason": reason})
    elif status is Status.CANCELLED:
        log.info("task cancelled: %s", reason, extra={**extra, "reason": reason})
    else:
        log.info("task completed", extra=extra)


def retried(task_id: UUID, attempt: int) -> None:
    """A failed or cancelled task was put back to ``created`` by its user."""
    _TRANSITIONS[Status.CREATED].inc()
    log.info("task retried", extra={"task_id": task_id, "attempt": attempt, "status": "created"})


def recovered(task_id: UUID, status: Status, attempt: int) -> None:
    metrics.RECOVERIES.inc()
    log.info(
        "task recovered at start",
        extra={"task_id": task_id, "status": status, "attempt": attempt},
    )


def restarted(task_id: UUID) -> None:
    metrics.ACTOR_RESTARTS.inc()
    log.info("actor restarted after a crash", extra={"task_id": task_id})


def journal_outage() -> None:
    metrics.JOURNAL_OUTAGES.inc()


def deleted(task_id: UUID) -> None:
    log.info("task deleted", extra={"task_id": task_id})


def webhook_attempted(state: str, seconds: float) -> None:
    """A webhook attempt ended (delivered, pending another try, gone, refused...)."""
    metrics.WEBHOOK_ATTEMPTS.labels(state).inc()
    metrics.WEBHOOK_SECONDS.observe(seconds)


def retention_removed(kind: str, count: int) -> None:
    metrics.RETENTION_REMOVED.labels(kind).inc(count)
