"""the cluster: its instances, the live tasks with their owner and fencing generation,
and the notifications that carry events, claims, cancels and deletions between instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Notifications carry only what finds the data (ids and seqs, far under the 8000-byte
# limit); each is sent at commit, so nobody hears of a row it cannot read yet.
_FUNCTIONS = """
CREATE FUNCTION stm_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stm_events', NEW.task_id::text || ':' || NEW.seq::text);
    RETURN NULL;
END $$;

CREATE FUNCTION stm_notify_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stm_deleted', OLD.id::text);
    RETURN NULL;
END $$;

CREATE FUNCTION stm_notify_claimable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stm_claimable', '');
    RETURN NULL;
END $$;

CREATE FUNCTION stm_notify_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner IS NOT NULL THEN
        PERFORM pg_notify('stm_cancel', NEW.owner::text || ':' || NEW.task_id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION stm_notify_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stm_members', '');
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER stm_event_notifies AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION stm_notify_event();
CREATE TRIGGER stm_deletion_notifies AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION stm_notify_deleted();
CREATE TRIGGER stm_unowned_insert_notifies AFTER INSERT ON live_tasks
    FOR EACH ROW WHEN (NEW.owner IS NULL) EXECUTE FUNCTION stm_notify_claimable();
CREATE TRIGGER stm_unowned_update_notifies AFTER UPDATE OF owner ON live_tasks
    FOR EACH ROW WHEN (NEW.owner IS NULL AND OLD.owner IS NOT NULL)
    EXECUTE FUNCTION stm_notify_claimable();
CREATE TRIGGER stm_cancel_notifies AFTER UPDATE OF cancel_reason ON live_tasks
    FOR EACH ROW WHEN (NEW.cancel_reason IS NOT NULL) EXECUTE FUNCTION stm_notify_cancel();
CREATE TRIGGER stm_membership_notifies AFTER INSERT OR DELETE ON cluster_instances
    FOR EACH ROW EXECUTE FUNCTION stm_notify_members();
"""


def upgrade() -> None:
    op.create_table(
        "cluster_instances",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lock_key", sa.BigInteger(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_instances")),
        sa.UniqueConstraint("lock_key", name=op.f("uq_cluster_instances_lock_key")),
    )
    op.create_table(
        "live_tasks",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("owner", sa.UUID(), nullable=True),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_live_tasks_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner"],
            ["cluster_instances.id"],
            name=op.f("fk_live_tasks_owner_cluster_instances"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_live_tasks")),
    )
    op.create_index(
        "ix_live_tasks_unowned",
        "live_tasks",
        ["queued_at"],
        unique=False,
        postgresql_where=sa.text("owner IS NULL"),
    )
    op.create_index("ix_live_tasks_owner", "live_tasks", ["owner"], unique=False)
    op.execute("CREATE SEQUENCE live_task_generations")
    # One statement per call: asyncpg prepares each, and a prepared statement is one.
    for function in _FUNCTIONS.split("END $$;")[:-1]:
        op.execute(function + "END $$;")
    for trigger in _TRIGGERS.split(";")[:-1]:
        op.execute(trigger)
    # The live tasks of a database that ran one instance: unowned, for the first to claim.
    op.execute(
        "INSERT INTO live_tasks (task_id, queued_at) SELECT id, created_at FROM tasks"
        " WHERE status NOT IN ('completed', 'failed', 'cancelled')"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER stm_event_notifies ON task_events")
    op.execute("DROP TRIGGER stm_deletion_notifies ON tasks")
    op.drop_table("live_tasks")
    op.drop_table("cluster_instances")
    op.execute("DROP SEQUENCE live_task_generations")
    for name in ("event", "deleted", "claimable", "cancel", "members"):
        op.execute(f"DROP FUNCTION stm_notify_{name}()")
