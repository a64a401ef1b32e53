"""The supervisor with 10,000 queued tasks live at once, in this process.

    python bench/supervisor_load.py

Capacity 1 and a preprocessing stage that never returns: one task holds the slot,
the other 9,999 actors wait ``queued``. With the in-memory journal of
tests/fakes.py and with the PostgreSQL journal (pool of 10):

* ``spawn_per_s``: n / (time from the first ``spawn`` to every task persisted
  as queued, or started for the first).
* ``kib_per_actor``: tracemalloc (memory journal; allocations of the journal
  itself, i.e. its stored events, left out) and RSS delta / n (both journals).
* ``recovery_s`` (PostgreSQL): a new supervisor over the 10,000 live tasks left
  by the previous one: time until ``run`` reports started, which it does once
  every live task (read in one query) has its actor.

Median of 3 runs. Prints one JSON object.
"""

from __future__ import annotations

import gc
import os
import sys  # noqa: E402  (tests/ on the path for the in-memory journal)
import time
import tracemalloc
from typing import Any
from uuid import UUID

import anyio
import asyncpg
from _common import PG, ROOT, RUNS, database, emit, machine, median, migrate, rss_kib

sys.path.insert(0, str(ROOT / "tests"))

from fakes import MemoryJournal  # noqa: E402

from speech.base import (  # noqa: E402
    AudioInput,
    Evaluation,
    NormalisedAudio,
    Pipeline,
    ProgressCallback,
    Transcription,
)
from store.database import open_database  # noqa: E402
from store.journal import PgJournal  # noqa: E402
from supervisor.config import SupervisorConfig  # noqa: E402
from supervisor.lifecycle import Status  # noqa: E402
from supervisor.supervisor import Supervisor  # noqa: E402

N = 10_000


class Forever:
    """Stages that never finish (the one task with the slot stays in preprocessing)."""

    async def preprocess(self, audio: AudioInput) -> NormalisedAudio:
        await anyio.sleep_forever()
        raise AssertionError

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        await anyio.sleep_forever()
        raise AssertionError

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return False

    async def evaluate(
        self, transcription: Transcription, reference_text: str | None, text_id: UUID | None
    ) -> Evaluation | None:
        return None


def pipeline() -> Pipeline:
    stages = Forever()
    return Pipeline(stages, stages, stages, None)


def config() -> SupervisorConfig:
    return SupervisorConfig(capacity=1, shutdown_grace=30)


async def _spawn_all(supervisor: Supervisor, ids: list[UUID], settled: Any) -> float:
    started = time.perf_counter()
    for task_id in ids:
        await supervisor.start(task_id)
    while not await settled():  # noqa: ASYNC110 - observing from outside, as a client would
        await anyio.sleep(0.01)
    return time.perf_counter() - started


async def memory_run(traced: bool) -> dict[str, Any]:
    journal = MemoryJournal()
    supervisor = Supervisor(journal, pipeline(), config())
    ids: list[UUID] = []

    async def settled() -> bool:
        return sum(1 for i in ids if journal.status(i) is not Status.CREATED) == N

    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.run)  # before the tasks exist: no recovery, only spawns
        ids += [journal.add_task(b"x" * 64) for _ in range(N)]
        gc.collect()
        rss0 = rss_kib(os.getpid())
        if traced:
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
        elapsed = await _spawn_all(supervisor, ids, settled)
        gc.collect()
        result: dict[str, Any] = {"spawn_per_s": round(N / elapsed, 1)}
        if traced:
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            keep = [tracemalloc.Filter(False, "*/tests/fakes.py")]
            diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "filename")
            result["kib_per_actor_tracemalloc"] = round(
                sum(d.size_diff for d in diff) / N / 1024, 2
            )
        else:
            result["kib_per_actor_rss"] = round((rss_kib(os.getpid()) - rss0) / N, 2)
        supervisor.shutdown()
    return result


async def _insert_tasks(db: str, n: int) -> list[UUID]:
    conn = await asyncpg.connect(host=PG["host"], user="postgres", database=db)
    try:
        rows = await conn.fetch(
            """
            WITH t AS (
              INSERT INTO tasks (id, user_id, title, language, status, last_seq)
              SELECT gen_random_uuid(), gen_random_uuid(), 'bench', 'en-US', 'created', 1
              FROM generate_series(1, $1) RETURNING id, created_at
            ), e AS (
              INSERT INTO task_events (task_id, seq, type, status, payload, created_at)
              SELECT id, 1, 'status', 'created', '{}', created_at FROM t
            ), a AS (
              INSERT INTO task_audio (task_id, filename, content_type, size, sha256, data)
              SELECT id, 'x.wav', 'audio/wav', 4, 'x', '\\x00000000'::bytea FROM t
            )
            SELECT id FROM t ORDER BY created_at
            """,
            n,
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


async def _count_not_created(db: str) -> int:
    conn = await asyncpg.connect(host=PG["host"], user="postgres", database=db)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM tasks WHERE status <> 'created'"))
    finally:
        await conn.close()


def _url(db: str) -> Any:
    from sqlalchemy import URL

    return URL.create(
        "postgresql+asyncpg",
        username="postgres",
        password="x",
        host=PG["host"],
        port=5432,
        database=db,
    )


async def postgres_run(db: str) -> dict[str, Any]:
    async def settled() -> bool:
        return await _count_not_created(db) == N

    async with open_database(_url(db), pool_size=10) as engine, anyio.create_task_group() as tg:
        supervisor = Supervisor(PgJournal(engine), pipeline(), config())
        await tg.start(supervisor.run)
        ids = await _insert_tasks(db, N)
        gc.collect()
        rss0 = rss_kib(os.getpid())
        elapsed = await _spawn_all(supervisor, ids, settled)
        gc.collect()
        result: dict[str, Any] = {
            "spawn_per_s": round(N / elapsed, 1),
            "kib_per_actor_rss": round((rss_kib(os.getpid()) - rss0) / N, 2),
        }
        supervisor.shutdown()

    async with open_database(_url(db), pool_size=10) as engine, anyio.create_task_group() as tg:
        supervisor = Supervisor(PgJournal(engine), pipeline(), config())
        started = time.perf_counter()
        await tg.start(supervisor.run)  # returns once every live task has its actor
        result["recovery_s"] = round(time.perf_counter() - started, 3)
        result["recovered_actors"] = len(supervisor.ownership)
        supervisor.shutdown()
    return result


def main() -> None:
    memory = [anyio.run(memory_run, False) for _ in range(RUNS)]
    traced = [anyio.run(memory_run, True) for _ in range(RUNS)]
    postgres = []
    for _ in range(RUNS):
        with database("sup") as db:
            migrate(db)
            postgres.append(anyio.run(postgres_run, db))
    emit(
        {
            "machine": machine(),
            "tasks": N,
            "memory_journal": {
                "spawn_per_s": median([r["spawn_per_s"] for r in memory]),
                "kib_per_actor_rss": median([r["kib_per_actor_rss"] for r in memory]),
                "kib_per_actor_tracemalloc": median(
                    [r["kib_per_actor_tracemalloc"] for r in traced]
                ),
                "runs": memory + traced,
            },
            "postgres_journal": {
                "spawn_per_s": median([r["spawn_per_s"] for r in postgres]),
                "kib_per_actor_rss": median([r["kib_per_actor_rss"] for r in postgres]),
                "recovery_s": median([r["recovery_s"] for r in postgres]),
                "runs": postgres,
            },
        }
    )


if __name__ == "__main__":
    main()
