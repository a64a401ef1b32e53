"""CPU cost of the instrumentation (metrics and lifecycle lines), per call, in-process.

    python bench/instrumentation.py            # single-process registry
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) python bench/instrumentation.py

CPU time (``time.process_time``), so a loaded machine slows it less than a wall-clock
load test: what admitting one task adds is the middleware, ``task created``, the
``queued`` transition and two statements' pool gauge. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _common import emit

from ops import metrics
from ops.logs import JsonFormatter, install_context
from supervisor import facts
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status
from web.observed import Observed

N = 20_000


def per_call_us(fn: Callable[[], object]) -> float:
    started = time.process_time()
    for _ in range(N):
        fn()
    return round((time.process_time() - started) / N * 1e6, 2)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _requests(app: Any) -> float:
    scope = {"type": "http", "method": "POST", "path": "/tasks", "headers": [(b"host", b"x")]}

    async def receive() -> dict[str, str]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        pass

    started = time.process_time()
    for _ in range(N):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / N * 1e6


def main() -> None:
    install_context()
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - for the run
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    task = uuid.uuid4()
    queued = Event(task, 2, EventType.STATUS, Status.QUEUED, {"position": 1}, datetime.now(UTC))
    report: dict[str, Any] = {"multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))}
    report["counter_inc_us"] = per_call_us(metrics.TASKS_CREATED.inc)
    report["gauge_inc_dec_us"] = per_call_us(
        lambda: (metrics.POOL_IN_USE.inc(), metrics.POOL_IN_USE.dec())
    )
    report["transition_json_line_us"] = per_call_us(
        lambda: facts.persisted(queued, previous=Status.CREATED, attempt=1, seconds=0.01)
    )
    report["task_created_json_line_us"] = per_call_us(lambda: facts.task_created(task, task))
    bare, observed = asyncio.run(_requests(_app)), asyncio.run(_requests(Observed(_app)))
    report["middleware_per_request_us"] = round(observed - bare, 2)
    report["per_admitted_task_us"] = round(
        report["middleware_per_request_us"]
        + report["task_created_json_line_us"]
        + report["transition_json_line_us"]
        + 2 * report["gauge_inc_dec_us"],
        1,
    )
    emit(report)


if __name__ == "__main__":
    main()
