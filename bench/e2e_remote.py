"""End to end with remote stages: completed tasks per second.

    python bench/e2e_remote.py

The three ILPS stages point at local stubs (``bench/_stubs.py``: preprocessing and
feedback answer at once, transcribing after 200 ms); MANAGER_CAPACITY=64. Each run
submits 2,000 tasks (1 s WAV, a text_id so all three stages run) at concurrency 16
and counts completions in the database every 50 ms. ``completed_per_s`` is the
steady rate: tasks completed between the 10 % and 90 % marks over that time.
The ceiling set by capacity and the stub is 64 / 0.2 s = 320 tasks/s.
Median of 3 runs (fresh database and server each). Prints one JSON object.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from _common import (
    RUNS,
    create_tasks,
    database,
    emit,
    machine,
    median,
    psql,
    service,
    stub_env,
    stubs,
    token,
)

N = 2000
FIELDS = {"text_id": str(uuid.UUID(int=7))}


def one_run() -> dict[str, Any]:
    bearer = token(uuid.uuid4())
    with (
        stubs(transcribing=0.2) as ports,
        database("e2e") as db,
        service(db, capacity=64, **stub_env(ports)) as (url, _),
    ):
        samples: list[tuple[float, int]] = []
        started = time.perf_counter()
        submit = threading.Thread(target=create_tasks, args=(url, bearer, N, 16, FIELDS))
        submit.start()
        done = 0
        while done < N and time.perf_counter() - started < 300:
            done = int(psql("SELECT count(*) FROM tasks WHERE status = 'completed'", db))
            samples.append((time.perf_counter() - started, done))
            time.sleep(0.05)
        submit.join()
        failed = int(psql("SELECT count(*) FROM tasks WHERE status = 'failed'", db))
    t10 = next(t for t, d in samples if d >= N * 0.1)
    t90 = next(t for t, d in samples if d >= N * 0.9)
    return {
        "completed_per_s": round(0.8 * N / (t90 - t10), 1),
        "all_done_s": round(samples[-1][0], 2),
        "completed": samples[-1][1],
        "failed": failed,
    }


def main() -> None:
    runs = [one_run() for _ in range(RUNS)]
    emit(
        {
            "machine": machine(),
            "tasks": N,
            "capacity": 64,
            "transcribe_ms": 200,
            "completed_per_s": median([r["completed_per_s"] for r in runs]),
            "ceiling_per_s": 64 / 0.2,
            "runs": runs,
        }
    )


if __name__ == "__main__":
    main()
