"""Every metric the service exports, and the exposition for ``GET /metrics``.

Names follow Prometheus conventions: the ``stm_`` prefix, base units (seconds),
``_total`` on counters (prometheus_client appends it). No label holds a task or a
user id: every label has a small, fixed set of values (README, "Metrics").
Gauges sum over the live processes in multiprocess mode (``ops.multiprocess``).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from ops.multiprocess import ENV

#: A ``_created`` series per counter doubles the output for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds, from a fast decode to an hour-long transcription.
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
#: Seconds a task waits for an engine slot: none at all, up to an hour behind long ones.
QUEUE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)
#: Seconds of an HTTP answer (an event stream counts until it ends).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600)


def _gauge(name: str, documentation: str) -> Gauge:
    return Gauge(name, documentation, multiprocess_mode="livesum")


TASKS_CREATED = Counter("stm_tasks_created", "Tasks admitted (an idempotent repeat is not one).")
TRANSITIONS = Counter("stm_transitions", "Status changes persisted, by new status.", ["status"])
OUTCOMES = Counter(
    "stm_task_outcomes", "Tasks that ended: completed, failed or cancelled.", ["outcome"]
)
FAILURES = Counter(
    "stm_task_failures", "Failed tasks by the stage and the class of failure.", ["stage", "class"]
)
STAGE_SECONDS = Histogram(
    "stm_stage_duration_seconds",
    "Duration of a stage's successful attempt, by stage and engine.",
    ["stage", "engine"],
    buckets=STAGE_BUCKETS,
)
RETRIES = Counter("stm_stage_retries", "Retries scheduled after a transient failure.", ["stage"])
QUEUE_WAIT = Histogram(
    "stm_queue_wait_seconds", "Time a task waited for an engine slot.", buckets=QUEUE_BUCKETS
)
QUEUE_DEPTH = _gauge("stm_queue_depth", "Tasks waiting for an engine slot.")
ACTORS_LIVE = _gauge("stm_actors_live", "Task actors running.")
ACTOR_RESTARTS = Counter("stm_actor_restarts", "Actors restarted after a crash.")
RECOVERIES = Counter("stm_recoveries", "Live tasks given their actor back at start.")
JOURNAL_OUTAGES = Counter(
    "stm_journal_outages", "Times an actor found the database unavailable and began to wait."
)
SSE_OPEN = _gauge("stm_sse_streams_open", "Event streams open.")
SSE_DROPPED = Counter(
    "stm_sse_subscribers_dropped", "Subscribers cut loose because they fell behind."
)
HTTP_REQUESTS = Counter(
    "stm_http_requests",
    "HTTP answers by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "stm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)
POOL_IN_USE = _gauge("stm_db_pool_connections_in_use", "Database connections lent out.")
POOL_WAITS = Counter(
    "stm_db_pool_waits", "Statements that found every pooled connection busy and waited."
)
ENGINE_BUSY = _gauge("stm_engine_workers_busy", "Engine worker processes doing work.")
WEBHOOK_ATTEMPTS = Counter(
    "stm_webhook_attempts", "Webhook delivery attempts, by what they came to.", ["state"]
)
WEBHOOK_SECONDS = Histogram(
    "stm_webhook_attempt_seconds",
    "Time one webhook attempt took.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
RETENTION_REMOVED = Counter(
    "stm_retention_removed", "What retention removed: audio or whole tasks.", ["kind"]
)


def exposition() -> tuple[bytes, str]:
    """The text format and its content type: every process's values in multiprocess mode."""
    if os.environ.get(ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
