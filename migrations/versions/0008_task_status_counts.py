"""task counts per status, kept by triggers (the operator overview reads them, not the
whole tasks table)

Every change of a task's status adds rows (the status, +1 or -1) to
``task_status_counts``, and every statement that adds or deletes tasks one per status
(+n or -n): appended, never updated, so concurrent writes never wait for each other
there. The write that adds every ``FOLD_EVERY``-th row folds the rows it can lock
into one per status (``SKIP LOCKED``: it never waits either, and each fold replaces
exactly what it deleted by their sum, so the sum per status is always the count). The
overview sums about ``FOLD_EVERY`` rows at most, whatever the number of tasks.

The writes run at READ COMMITTED (the service sets no other level): a fold at
REPEATABLE READ could meet a serialization failure on a row another fold removed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: How many rows may pile up between folds (the overview reads about this many at most).
FOLD_EVERY = 1024

# Folds what it can lock now (SKIP LOCKED: never waits for another fold); each fold
# replaces exactly the rows it deleted by their sums.
_FOLD = """
CREATE FUNCTION stm_fold_status_counts() RETURNS void LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM task_status_counts WHERE id IN (
            SELECT id FROM task_status_counts FOR UPDATE SKIP LOCKED
        )
        RETURNING status, n
    )
    INSERT INTO task_status_counts (status, n)
    SELECT status, sum(n) FROM gone GROUP BY status HAVING sum(n) <> 0
$$;
"""

# A status change: -1 and +1, row by row (the WHEN of its trigger skips the writes that
# change no status, most of the journal's). Insertions and deletions: one row per
# status per statement (a retention sweep of thousands of tasks adds a few rows).
_COUNT = f"""
CREATE FUNCTION stm_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due boolean;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        WITH added AS (
            INSERT INTO task_status_counts (status, n)
            VALUES (OLD.status, -1), (NEW.status, 1) RETURNING id
        )
        SELECT bool_or(id % {FOLD_EVERY} = 0) INTO due FROM added;
    ELSIF TG_OP = 'INSERT' THEN
        WITH added AS (
            INSERT INTO task_status_counts (status, n)
            SELECT status, count(*) FROM new_tasks GROUP BY status RETURNING id
        )
        SELECT bool_or(id % {FOLD_EVERY} = 0) INTO due FROM added;
    ELSE
        WITH added AS (
            INSERT INTO task_status_counts (status, n)
            SELECT status, -count(*) FROM old_tasks GROUP BY status RETURNING id
        )
        SELECT bool_or(id % {FOLD_EVERY} = 0) INTO due FROM added;
    END IF;
    IF due THEN
        PERFORM stm_fold_status_counts();
    END IF;
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER stm_status_counts_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION stm_count_statuses();
CREATE TRIGGER stm_status_counts_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION stm_count_statuses();
CREATE TRIGGER stm_status_counts_update AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION stm_count_statuses();
"""


def upgrade() -> None:
    op.create_table(
        "task_status_counts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_status_counts")),
    )
    op.execute(_FOLD)
    op.execute(_COUNT)
    # The triggers first: creating them locks out writes to tasks until this commits,
    # so the count below and the rows the triggers add never overlap nor miss a task.
    for trigger in _TRIGGERS.split(";")[:-1]:
        op.execute(trigger)
    op.execute(
        "INSERT INTO task_status_counts (status, n)"
        " SELECT status, count(*) FROM tasks GROUP BY status"
    )


def downgrade() -> None:
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER stm_status_counts_{name} ON tasks")
    op.execute("DROP FUNCTION stm_count_statuses()")
    op.execute("DROP FUNCTION stm_fold_status_counts()")
    op.drop_table("task_status_counts")
