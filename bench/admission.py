"""Admission: ``POST /tasks`` (multipart, a 1 s WAV) at concurrency 16, with raw baselines.

    python bench/admission.py

* ``idle``: engine work paused. The three stages point at local ILPS stubs whose
  preprocessing holds every request at a gate, and MANAGER_CAPACITY=1: one task
  sits in preprocessing, every new one is created, gets its actor and persists
  ``queued`` (all of admission's own work), and no engine runs.
* ``busy``: the embedded engine, MANAGER_ENGINE_WORKERS=1 and MANAGER_CAPACITY=1,
  primed with tasks so the worker process recognises back to back on one core
  while the load runs (its CPU share is reported).
* baselines, same run: Starlette hello world (GET) under uvicorn h11 and
  uvloop+httptools, and one-row INSERT+COMMIT/s on 1 and 8 asyncpg connections.

Every figure is the median of 3 runs (a fresh database and server per run); wrk
(C, 1 thread) is the load generator. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from typing import Any

import psutil
from _common import (
    BENCH,
    PY,
    RUNS,
    database,
    emit,
    free_port,
    machine,
    median,
    multipart,
    post_lua,
    process,
    psql,
    service,
    stub_control,
    stub_env,
    stubs,
    summarise,
    token,
    wav_bytes,
    wrk,
)

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
C = 16


def hello(http: str) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with process([PY, str(BENCH / "_hello.py"), str(port), http], ready=url):
        wrk(url, connections=C, seconds=1)
        return summarise([wrk(url, connections=C, seconds=SECONDS) for _ in range(RUNS)])


async def _inserts(db: str, connections: int, seconds: float) -> float:
    import asyncpg

    conns = [
        await asyncpg.connect(host="127.0.0.1", user="postgres", database=db)
        for _ in range(connections)
    ]
    count = 0
    deadline = time.perf_counter() + seconds

    async def loop(conn: Any) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await conn.execute("INSERT INTO one_row (v) VALUES ($1)", 1)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        await c.close()
    return count / elapsed


def insert_rate(connections: int) -> dict[str, Any]:
    import uvloop

    with database("insert") as db:
        psql("CREATE TABLE one_row (id bigserial PRIMARY KEY, v int)", db)
        runs = [round(uvloop.run(_inserts(db, connections, SECONDS)), 1) for _ in range(RUNS)]
    return {"per_s": median(runs), "runs": runs}


def _post_script(tmp: str) -> str:
    body, content_type = multipart(wav_bytes(1.0), {"title": "bench"})
    path = os.path.join(tmp, "body.bin")
    with open(path, "wb") as f:
        f.write(body)
    return post_lua(path, content_type, token(uuid.uuid4()))


def admission_idle(lua: str) -> dict[str, Any]:
    runs = []
    for _ in range(RUNS):
        with stubs() as ports, database("adm") as db:
            stub_control(ports, "close")
            with service(db, capacity=1, **stub_env(ports)) as (url, proc):
                wrk(url + "/tasks", connections=C, seconds=1, lua=lua)  # warm-up
                result = wrk(url + "/tasks", connections=C, seconds=SECONDS, lua=lua)
                result["rss_mib_after"] = round(psutil.Process(proc.pid).memory_info().rss / 2**20)
                runs.append(result)
    return summarise(runs)


def admission_busy(lua: str) -> dict[str, Any]:
    runs = []
    for _ in range(RUNS):
        with database("adm") as db, service(db, capacity=1, engine_workers=1) as (url, proc):
            wrk(url + "/tasks", connections=2, seconds=3, lua=lua)  # prime: a queue of work
            time.sleep(2)  # the worker process has started and loaded its models
            workers = psutil.Process(proc.pid).children(recursive=True)
            before = {w.pid: w.cpu_times() for w in workers}
            started = time.perf_counter()
            result = wrk(url + "/tasks", connections=C, seconds=SECONDS, lua=lua)
            wall = time.perf_counter() - started
            busy = 0.0
            for w in workers:
                t = w.cpu_times()
                busy += (t.user + t.system) - (before[w.pid].user + before[w.pid].system)
            result["engine_cpu_percent"] = round(100 * busy / wall, 1)
            runs.append(result)
    return summarise(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lua = _post_script(tmp)
        report: dict[str, Any] = {"machine": machine(), "concurrency": C, "seconds": SECONDS}
        report["idle"] = admission_idle(lua)
        report["busy"] = admission_busy(lua)
        report["baseline"] = {
            "hello_h11": hello("h11"),
            "hello_httptools": hello("httptools"),
            "insert_commit_1_conn": insert_rate(1),
            "insert_commit_8_conn": insert_rate(8),
        }
        report["ratio_idle_to_hello_httptools"] = round(
            report["idle"]["rps"] / report["baseline"]["hello_httptools"]["rps"], 3
        )
    emit(report)


if __name__ == "__main__":
    main()
