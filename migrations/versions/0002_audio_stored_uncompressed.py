"""audio stored uncompressed

Recordings arrive compressed (or as PCM that PostgreSQL's pglz hardly shrinks):
compressing every upload on insert cost the database CPU for nothing. EXTERNAL
keeps them out of line, uncompressed. It applies to values written from now on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 08:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE task_audio ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE task_audio ALTER COLUMN pcm SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE task_audio ALTER COLUMN data SET STORAGE EXTENDED")
    op.execute("ALTER TABLE task_audio ALTER COLUMN pcm SET STORAGE EXTENDED")
