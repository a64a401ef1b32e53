"""Open streams: 10,000 concurrent SSE streams over 1,000 tasks on one server process.

    python bench/open_streams.py

1,000 tasks (capacity 1,000) wait in preprocessing, held at the stub's gate; two
client processes open 10 streams per task. Meanwhile: the server's RSS (per open
stream = delta / streams), its connections in pg_stat_activity (an idle stream
must hold none), and ``GET /tasks/{id}`` under wrk (c=16, 5 s). Then the gate
opens: every task runs to completed and every stream must get every event, seq
1..n in order, ending with the terminal one. Median of 3 runs.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from _common import (
    RUNS,
    SseClients,
    create_tasks,
    database,
    emit,
    machine,
    median,
    psql,
    raise_nofile,
    rss_kib,
    service,
    stub_control,
    stub_env,
    stubs,
    token,
    wrk,
)

TASKS = 1000
STREAMS = 10_000


def one_run() -> dict[str, Any]:
    bearer = token(uuid.uuid4())
    with (
        stubs(transcribing=0.2) as ports,
        database("streams") as db,
        service(db, capacity=TASKS, **stub_env(ports)) as (url, proc),
    ):
        stub_control(ports, "close")
        ids = create_tasks(url, bearer, TASKS, 16, {"text_id": str(uuid.UUID(int=7))})
        time.sleep(2)
        rss_before = rss_kib(proc.pid)
        clients = SseClients(2)
        try:
            started = time.perf_counter()
            opened = clients.open(url, bearer, STREAMS, [f"/tasks/{i}/events" for i in ids])
            open_s = time.perf_counter() - started
            time.sleep(2)
            rss_after = rss_kib(proc.pid)
            activity = psql(
                "SELECT state, count(*) FROM pg_stat_activity "
                "WHERE application_name = 'service-task-manager' GROUP BY state",
                db,
            )
            detail = wrk(
                f"{url}/tasks/{ids[0]}",
                connections=16,
                seconds=5,
                headers={"Authorization": f"Bearer {bearer}"},
            )
            stub_control(ports, "open")
            started = time.perf_counter()
            result = clients.wait(300)
            deliver_s = time.perf_counter() - started
        finally:
            clients.close()
    return {
        "opened": opened,
        "open_s": round(open_s, 2),
        "rss_per_stream_kib": round((rss_after - rss_before) / STREAMS, 2),
        "rss_mib": round(rss_after / 1024),
        "db_connections_by_state": dict(
            (line.split("|")[0] or "?", int(line.split("|")[1])) for line in activity.splitlines()
        ),
        "detail_p99_ms": detail["p99_ms"],
        "detail_rps": detail["rps"],
        "streams_complete_in_order": result["complete_in_order"],
        "open_statuses": result["open_statuses"],
        "events_delivered": result["events"],
        "deliver_all_s": round(deliver_s, 2),
    }


def main() -> None:
    raise_nofile()
    runs = [one_run() for _ in range(RUNS)]
    emit(
        {
            "machine": machine(),
            "tasks": TASKS,
            "streams": STREAMS,
            "rss_per_stream_kib": median([r["rss_per_stream_kib"] for r in runs]),
            "detail_p99_ms": median([r["detail_p99_ms"] for r in runs]),
            "streams_complete_in_order": median([r["streams_complete_in_order"] for r in runs]),
            "runs": runs,
        }
    )


if __name__ == "__main__":
    main()
