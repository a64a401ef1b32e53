"""task counts per status, kept by triggers (the operator overview reads them, not the
whole tasks table)

Every change of a task's status adds a row (the status, +1 or -1) to
``task_status_counts``: appended, never updated, so concurrent writes never wait for
each other there. Once every ``FOLD_EVERY`` rows the write that added it folds the
rows it can lock into one per status (``SKIP LOCKED``: it never waits either, and each
fold replaces exactly what it deleted by its sum, so the sum per status is always the
count). The overview sums at most a few thousand rows, whatever the number of tasks.

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

_FUNCTION = f"""
CREATE FUNCTION stm_count_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
    fold boolean := false;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO task_status_counts (status, n) VALUES (OLD.status, -1) RETURNING id INTO added;
        fold := added % {FOLD_EVERY} = 0;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO task_status_counts (status, n) VALUES (NEW.status, 1) RETURNING id INTO added;
        fold := fold OR added % {FOLD_EVERY} = 0;
    END IF;
    IF fold THEN
        WITH gone AS (
            DELETE FROM task_status_counts WHERE id IN (
                SELECT id FROM task_status_counts FOR UPDATE SKIP LOCKED
            )
            RETURNING status, n
        )
        INSERT INTO task_status_counts (status, n)
        SELECT status, sum(n) FROM gone GROUP BY status HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER stm_status_counts_insert_delete AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION stm_count_status();
CREATE TRIGGER stm_status_counts_update AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION stm_count_status();
"""


def upgrade() -> None:
    op.create_table(
        "task_status_counts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_status_counts")),
    )
    op.execute(_FUNCTION)
    # The triggers first: creating them locks out writes to tasks until this commits,
    # so the count below and the rows the triggers add never overlap nor miss a task.
    for trigger in _TRIGGERS.split(";")[:-1]:
        op.execute(trigger)
    op.execute(
        "INSERT INTO task_status_counts (status, n)"
        " SELECT status, count(*) FROM tasks GROUP BY status"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER stm_status_counts_update ON tasks")
    op.execute("DROP TRIGGER stm_status_counts_insert_delete ON tasks")
    op.execute("DROP FUNCTION stm_count_status()")
    op.drop_table("task_status_counts")
