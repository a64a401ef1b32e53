"""What the reads that grow with the data cost, at 1k, 10k and 100k tasks.

    python bench/backlog_costs.py          # BENCH_SIZES=1000,10000 for fewer

For each size, a fresh migrated database holds that many tasks: nine in ten ended
(``completed``), one in ten live and waiting, unowned, in the cluster's queue (a
backlog while every instance is full). Then, through asyncpg and the service's own
SQL (store/cluster.py, store/admin.py):

- ``position_last``: ``GET /tasks/{id}``'s queue position of the newest waiting task
  (the most tasks ahead of it), ``position_first`` of the oldest;
- ``overview``: the operator overview's counts per status, and beside it
  ``overview_scan_of_tasks``, the same counts by a scan of ``tasks`` (as before 0008);
- ``overview_after_3000_changes``: the same, after 3000 status changes with no vacuum
  since (the rows the folds left dead are still there);
- ``status_change_counted_ms``: what one write that changes a task's status costs
  the server with the trigger that counts it, ``status_change_uncounted_ms`` without
  (the write side's baseline): 2,000 of them in one PL/pgSQL block, median of 3;
- ``claim``: one claim round (a batch of 32), each rolled back to a savepoint (its
  time includes the savepoint's two round trips).

Each is run 30 times (prepared, as the service runs them); the median client-side
time in ms, and one EXPLAIN (ANALYZE, BUFFERS): its plan nodes, buffers touched and
server time. Baseline in the same run: ``SELECT 1`` on the same connection.

Then the claimers (``claim_wakes``): three instances with room, each with its own
LISTEN connection, hear a burst of 200 admissions left unowned; the claim rounds each
ran, coalesced (cluster/claim_wakes.py) and, as the baseline, with no settling (a
round per wake as soon as the claimer runs, as before). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from typing import Any

import anyio
import asyncpg
from _common import PG, database, emit, machine, median, migrate

from cluster.claim_wakes import ClaimWakes, Settle

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,100000").split(",")]
REPEAT = 30
CLAIMERS = 3
BURST = 200
#: 2,000 status changes, one task each (they flip between two ended statuses).
STATUS_CHANGES = """
DO $$ DECLARE t uuid; BEGIN
    FOR t IN SELECT id FROM tasks WHERE status IN ('completed', 'failed') LIMIT 2000 LOOP
        UPDATE tasks SET status = CASE status WHEN 'completed' THEN 'failed'
                                             ELSE 'completed' END
        WHERE id = t;
    END LOOP;
END $$
"""
#: The overview's counts as they were read before migration 0008: the raw baseline.
SCAN_COUNTS = "SELECT status, count(*) FROM tasks GROUP BY status"


def fill_sql(total: int) -> str:
    waiting = total // 10
    return f"""
    INSERT INTO tasks (id, user_id, title, language, status, attempt, last_seq,
                       transcript, result, accuracy, created_at, updated_at, completed_at)
    SELECT gen_random_uuid(), gen_random_uuid(), 'task ' || g, 'en-US',
           CASE WHEN g <= {waiting} THEN 'created' ELSE 'completed' END, 1, 1,
           CASE WHEN g <= {waiting} THEN NULL ELSE repeat('hello world ', 20) END,
           NULL, NULL, now() - g * interval '1 second', now(), NULL
    FROM generate_series(1, {total}) AS g;
    INSERT INTO live_tasks (task_id, queued_at)
    SELECT id, created_at FROM tasks WHERE status = 'created';
    """


async def timed(connection: asyncpg.Connection, sql: str, *args: object) -> float:
    statement = await connection.prepare(sql)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        await statement.fetch(*args)
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


async def timed_undone(connection: asyncpg.Connection, sql: str, *args: object) -> float:
    """As ``timed``, each run in a savepoint rolled back (a claim changes what it reads)."""
    statement = await connection.prepare(sql)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        await connection.execute("SAVEPOINT bench")
        await statement.fetch(*args)
        await connection.execute("ROLLBACK TO SAVEPOINT bench")
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


async def explained(connection: asyncpg.Connection, sql: str, *args: object) -> dict[str, Any]:
    """The plan's node kinds (with the relation or index), its buffers and server time."""
    rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    text = "\n".join(row[0] for row in rows)
    nodes = re.findall(
        r"((?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan"
        r"|Bitmap Index Scan)(?: using \w+)? on \w+)",
        text,
    )
    buffers = sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", text.split("Planning")[0]))
    server = re.search(r"Execution Time: ([\d.]+) ms", text)
    return {
        "nodes": sorted(set(nodes)),
        "buffers": buffers,
        "server_ms": float(server.group(1)) if server else None,
    }


async def measure(db: str, total: int) -> dict[str, Any]:
    from store.admin import _BY_STATUS  # the service's own statements
    from store.cluster import _CLAIM, _UNOWNED_POSITION

    connection = await asyncpg.connect(host=PG["host"], user=PG["user"], database=db)
    try:
        await connection.execute(fill_sql(total))
        # One statement each (VACUUM runs outside a transaction): the steady state that
        # autovacuum keeps, dead rows of the counts' folds gone.
        for table in ("tasks", "live_tasks", "task_status_counts"):
            await connection.execute(f"VACUUM ANALYZE {table}")
        first = await connection.fetchval(
            "SELECT task_id FROM live_tasks ORDER BY queued_at LIMIT 1"
        )
        last = await connection.fetchval(
            "SELECT task_id FROM live_tasks ORDER BY queued_at DESC LIMIT 1"
        )
        owner = uuid.uuid4()
        await connection.execute(
            "INSERT INTO cluster_instances (id, name, lock_key, lease_until)"
            " VALUES ($1, 'bench', 1, now() + interval '1 hour')",
            owner,
        )
        result: dict[str, Any] = {"tasks": total, "waiting": total // 10}
        result["baseline_select_1_ms"] = await timed(connection, "SELECT 1")
        position = _UNOWNED_POSITION.sql
        result["position_last"] = {
            "ms": await timed(connection, position, last),
            "value": await connection.fetchval(position, last),
            **await explained(connection, position, last),
        }
        result["position_first"] = {
            "ms": await timed(connection, position, first),
            **await explained(connection, position, first),
        }
        overview = _BY_STATUS.sql
        result["overview"] = {
            "ms": await timed(connection, overview),
            **await explained(connection, overview),
        }
        # 3000 status changes since the last vacuum (6000 rows appended, folded every
        # 1024): what the overview reads between autovacuum's visits.
        await connection.execute(
            "UPDATE tasks SET status = 'failed' WHERE id IN"
            " (SELECT id FROM tasks WHERE status = 'completed' LIMIT 3000)"
        )
        result["overview_after_3000_changes"] = {
            "ms": await timed(connection, overview),
            **await explained(connection, overview),
        }
        result["overview_scan_of_tasks"] = {
            "ms": await timed(connection, SCAN_COUNTS),
            **await explained(connection, SCAN_COUNTS),
        }
        # What the counts add to a write that changes a status: 2,000 such writes, each
        # to another task, in one statement of PL/pgSQL (no round trips, no commit's
        # flush to hide it), with the counting trigger and without (the baseline),
        # alternating, three times each; per write.
        for _ in range(3):
            for name, enabled in (("counted", "ENABLE"), ("uncounted", "DISABLE")):
                await connection.execute(
                    f"ALTER TABLE tasks {enabled} TRIGGER stm_status_counts_update"
                )
                start = time.perf_counter()
                await connection.execute(STATUS_CHANGES)
                per_write = (time.perf_counter() - start) * 1000 / 2000
                result.setdefault(f"status_change_{name}_ms", []).append(per_write)
        for name in ("counted", "uncounted"):
            result[f"status_change_{name}_ms"] = median(result[f"status_change_{name}_ms"])
        # A claim of a batch, undone each time: what one claim round costs.
        claim = _CLAIM.sql
        try:
            async with connection.transaction():
                result["claim"] = {
                    "ms": await timed_undone(connection, claim, owner, 32),
                    **await explained(connection, claim, owner, 32),
                }
                raise _Rollback
        except _Rollback:
            pass
        return result
    finally:
        await connection.close()


class _Rollback(Exception):
    """Leaves the claims' transaction without keeping what it took."""


async def claim_rounds(db: str, settle: Settle | None) -> dict[str, Any]:
    """``CLAIMERS`` instances with room hear a burst of ``BURST`` admissions left
    unowned (one transaction each, back to back); each claims on its rounds. How many
    rounds (claim statements) each ran, and in how long the burst was all claimed."""
    from sqlalchemy import URL

    from cluster.listener import Listener
    from store.cluster import ClusterStore
    from store.database import open_database
    from supervisor.claims import Claims

    url = URL.create("postgresql+asyncpg", username="postgres", host=PG["host"], database=db)
    admin = await asyncpg.connect(host=PG["host"], user=PG["user"], database=db)
    claimed = 0
    all_claimed = asyncio.Event()
    wakes_of: list[ClaimWakes] = []

    async def claimer(index: int, database: Any, ready: asyncio.Event) -> None:
        nonlocal claimed
        claims = Claims(uuid.uuid4(), 10 * BURST)
        await admin.execute(
            "INSERT INTO cluster_instances (id, name, lock_key, lease_until)"
            " VALUES ($1, 'bench', $2, now() + interval '1 hour')",
            claims.instance_id,
            index + 1,
        )
        wakes = ClaimWakes(claims, settle=settle) if settle else ClaimWakes(claims)
        wakes.maybe_unowned = False
        wakes_of.append(wakes)

        async def tick() -> None:
            pass

        listener = Listener(
            url,
            {"stm_claimable": lambda _: wakes.wake(unowned=True)},
            tick,
            poll=False,
            poll_seconds=1.0,
        )
        store = ClusterStore(database)
        async with anyio.create_task_group() as group:
            group.start_soon(listener.run)
            await listener.listening.wait()
            ready.set()
            while True:
                await wakes.next_round()
                wakes.maybe_unowned = False
                for task in await store.claim(claims.instance_id, claims.room):
                    claims.hold(task.snapshot.id, task.generation)
                    claimed += 1
                if claimed == BURST:
                    all_claimed.set()

    async with open_database(url, pool_size=CLAIMERS + 1) as database:
        async with anyio.create_task_group() as group:
            for index in range(CLAIMERS):
                ready = asyncio.Event()
                group.start_soon(claimer, index, database, ready)
                await ready.wait()
            start = time.perf_counter()
            for _ in range(BURST):
                task_id = uuid.uuid4()
                async with admin.transaction():
                    await admin.execute(
                        "INSERT INTO tasks (id, user_id, title, language, status, last_seq)"
                        " VALUES ($1, $2, 'burst', 'en-US', 'created', 1)",
                        task_id,
                        uuid.uuid4(),
                    )
                    await admin.execute("INSERT INTO live_tasks (task_id) VALUES ($1)", task_id)
            await all_claimed.wait()
            elapsed = time.perf_counter() - start
            group.cancel_scope.cancel()
    await admin.close()
    return {
        "claimers": CLAIMERS,
        "notifications": BURST,
        "rounds_per_claimer": [w.rounds for w in wakes_of],
        "all_claimed_ms": round(elapsed * 1000, 1),
    }


async def _no_settle() -> None:
    await asyncio.sleep(0)


def main() -> None:
    sizes = []
    for total in SIZES:
        with database("costs") as db:
            migrate(db)
            sizes.append(asyncio.run(measure(db, total)))
    wakes: dict[str, Any] = {}
    for name, settle in (("baseline_round_per_wake", _no_settle), ("coalesced", None)):
        with database("wakes") as db:
            migrate(db)
            wakes[name] = asyncio.run(claim_rounds(db, settle))
    emit(
        {
            "bench": "backlog_costs",
            "machine": machine(),
            "repeat": REPEAT,
            "sizes": sizes,
            "claim_wakes": wakes,
        }
    )


if __name__ == "__main__":
    main()
