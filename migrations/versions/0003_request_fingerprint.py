"""request fingerprint beside the idempotency key

A repeated Idempotency-Key must carry the same request: the digest of the upload
and its fields is kept with the task to tell. Rows from before have none, and a
repeat of their key matches whatever it carries, as it did.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("request_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "request_fingerprint")
