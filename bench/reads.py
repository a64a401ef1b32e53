"""Reads with 1,000,000 tasks in the table, 100,000 of them one user's.

    python bench/reads.py

The rows are bulk-inserted with one INSERT ... SELECT generate_series (terminal
tasks, so start-up recovery gives none an actor), then ANALYZE. wrk (c=16, 5 s)
on the user's first page (``GET /tasks``, 20 items), a deep page (the cursor of
the 90,000th task) and ``GET /tasks/{id}``. EXPLAIN of the page query must use
ix_tasks_user_created. Baseline in the same run: Starlette hello (httptools).
Median of 3 wrk runs each. Prints one JSON object.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from _common import (
    BENCH,
    PY,
    RUNS,
    database,
    emit,
    free_port,
    machine,
    migrate,
    process,
    psql,
    service,
    summarise,
    token,
    wrk,
)

TOTAL = 1_000_000
MINE = 100_000
USER = uuid.UUID(int=42)


def fill(db: str) -> None:
    psql(
        f"""
        INSERT INTO tasks (id, user_id, title, language, status, attempt, last_seq,
                           transcript, result, accuracy, created_at, updated_at, completed_at)
        SELECT gen_random_uuid(),
               CASE WHEN g % 10 = 0 THEN '{USER}'::uuid ELSE gen_random_uuid() END,
               'task ' || g, 'en-US', 'completed', 1, 7, 'hello world', 'h ə l oʊ', 80.0,
               now() - g * interval '1 second', now() - g * interval '1 second',
               now() - g * interval '1 second'
        FROM generate_series(1, {TOTAL}) AS g;
        ANALYZE tasks;
        """,
        db,
    )


def deep_cursor(db: str) -> tuple[str, str]:
    from store.cursor import encode_cursor

    row = psql(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), id "
        f"FROM tasks WHERE user_id = '{USER}' "
        f"ORDER BY created_at DESC, id DESC OFFSET {int(MINE * 0.9)} LIMIT 1",
        db,
    )
    created_at, task_id = row.split("|")
    created = datetime.fromisoformat(created_at + "+00:00")
    return encode_cursor(created, uuid.UUID(task_id)), f"('{created}', '{task_id}')"


def explain(db: str, keyset: str) -> str:
    return psql(
        "EXPLAIN SELECT id, title, status, accuracy, created_at, updated_at, failure_reason "
        f"FROM tasks WHERE user_id = '{USER}' AND (created_at, id) < {keyset} "
        "ORDER BY created_at DESC, id DESC LIMIT 21",
        db,
    )


def main() -> None:
    bearer = token(USER)
    auth = {"Authorization": f"Bearer {bearer}"}
    report: dict[str, Any] = {"machine": machine(), "tasks": TOTAL, "users_tasks": MINE}
    with database("reads") as db:
        migrate(db)
        fill(db)
        cursor, keyset = deep_cursor(db)
        plan = explain(db, keyset)
        report["explain_uses_index"] = "ix_tasks_user_created" in plan
        report["explain"] = plan.splitlines()[:3]
        detail_id = psql(f"SELECT id FROM tasks WHERE user_id = '{USER}' LIMIT 1", db)
        with service(db) as (url, _):
            targets = {
                "first_page": f"{url}/tasks?limit=20",
                "deep_page": f"{url}/tasks?limit=20&cursor={cursor}",
                "detail": f"{url}/tasks/{detail_id}",
            }
            for name, target in targets.items():
                wrk(target, connections=16, seconds=1, headers=auth)
                runs = [wrk(target, connections=16, seconds=5, headers=auth) for _ in range(RUNS)]
                assert all(r["non_2xx"] == 0 for r in runs), runs
                report[name] = summarise(runs)
    port = free_port()
    hello = f"http://127.0.0.1:{port}/"
    with process([PY, str(BENCH / "_hello.py"), str(port), "httptools"], ready=hello):
        report["baseline_hello_httptools"] = summarise(
            [wrk(hello, connections=16, seconds=5) for _ in range(RUNS)]
        )
    emit(report)


if __name__ == "__main__":
    main()
