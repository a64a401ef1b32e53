"""transcript segments: the stretches of the transcript with their times

Whisper writes its transcript in segments (a phrase or a sentence, with a start and an
end); a task keeps them beside its words and phonemes. Tasks transcribed before have
none (NULL, shown as an empty list).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("segments", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "segments")
