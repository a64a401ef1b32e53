"""Apply the Alembic migrations from code (``run.py`` does it at start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL

ROOT = Path(__file__).resolve().parent.parent


def upgrade(url: URL | str) -> None:
    """Bring the database at ``url`` to the newest schema. Call outside an event loop."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
