"""Event latency: a persisted transition to its receipt by an SSE client.

    python bench/event_latency.py

Latency of one event = the client's clock when the frame arrives minus the
event's ``created_at`` (PostgreSQL's ``now()`` in the transaction that persisted
it: same machine, same clock; it is taken at the start of that one-statement
transaction, so the figure includes the write itself and errs high). Only events
persisted after the stream opened count (replayed ones are not live).

The stages point at local ILPS stubs; preprocessing is held at a gate while the
streams open, then released: transcribing, progress, evaluating and completed
follow live (4 events per task).

* ``one_stream``: 50 tasks one after another, one stream each (200 events per run).
* ``fanout_1000``: one task, 1,000 streams (one client process), 4 events each.
* baseline: the same client against a bare Starlette SSE server
  (``bench/_raw_sse.py``) pushing a timestamped frame to 1 and to 1,000 streams.

Medians over 3 runs of each run's p50/p99. Prints one JSON object.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from typing import Any

from _common import (
    BENCH,
    PY,
    RUNS,
    SseClients,
    create_tasks,
    database,
    emit,
    free_port,
    latency_summary,
    machine,
    median,
    process,
    service,
    stub_control,
    stub_env,
    stubs,
    token,
)

TASKS_ONE = 50
FANOUT = 1000
FIELDS = {"text_id": str(uuid.UUID(int=7))}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "runs": runs,
    }


def one_stream_run(
    url: str, ports: dict[str, int], bearer: str, clients: SseClients
) -> dict[str, Any]:
    latencies: list[float] = []
    for _ in range(TASKS_ONE):
        stub_control(ports, "close")
        (task_id,) = create_tasks(url, bearer, 1, 1, FIELDS)
        clients.open(url, bearer, 1, [f"/tasks/{task_id}/events"])
        time.sleep(0.05)
        stub_control(ports, "open")
        latencies += clients.wait(30)["latencies_ms"]
    return latency_summary(latencies)


def fanout_run(url: str, ports: dict[str, int], bearer: str, clients: SseClients) -> dict[str, Any]:
    stub_control(ports, "close")
    (task_id,) = create_tasks(url, bearer, 1, 1, FIELDS)
    opened = clients.open(url, bearer, FANOUT, [f"/tasks/{task_id}/events"])
    time.sleep(0.5)
    stub_control(ports, "open")
    result = clients.wait(60)
    summary = latency_summary(result["latencies_ms"])
    summary.update(opened=opened, complete_in_order=result["complete_in_order"])
    return summary


def raw_run(url: str, clients: SseClients, streams: int, pushes: int) -> dict[str, Any]:
    clients.open(url, "x", streams, ["/stream"])
    time.sleep(0.2)
    for i in range(pushes):
        req = urllib.request.Request(f"{url}/push?end={int(i == pushes - 1)}", method="POST")
        urllib.request.urlopen(req).read()
        time.sleep(0.01)
    return latency_summary(clients.wait(30)["latencies_ms"])


def main() -> None:
    bearer = token(uuid.uuid4())
    report: dict[str, Any] = {"machine": machine()}
    clients = SseClients(1)
    try:
        with (
            stubs(transcribing=0.01) as ports,
            database("evl") as db,
            service(db, capacity=64, **stub_env(ports)) as (url, _),
        ):
            create_tasks(url, bearer, 5, 1, FIELDS)  # warm-up
            report["one_stream"] = _summary(
                [one_stream_run(url, ports, bearer, clients) for _ in range(RUNS)]
            )
            report["fanout_1000"] = _summary(
                [fanout_run(url, ports, bearer, clients) for _ in range(RUNS)]
            )
        port = free_port()
        raw = f"http://127.0.0.1:{port}"
        with process([PY, str(BENCH / "_raw_sse.py"), str(port)], ready=raw + "/healthz"):
            report["baseline_raw_sse_1"] = _summary(
                [raw_run(raw, clients, 1, 200) for _ in range(RUNS)]
            )
            report["baseline_raw_sse_1000"] = _summary(
                [raw_run(raw, clients, FANOUT, 4) for _ in range(RUNS)]
            )
    finally:
        clients.close()
    emit(report)


if __name__ == "__main__":
    main()
