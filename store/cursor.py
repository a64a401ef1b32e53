"""Opaque keyset cursors for task lists: the (created_at, id) of the last item."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from store.instants import representable


class BadCursor(ValueError):
    """A cursor this service did not issue."""


def encode_cursor(created_at: datetime, task_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(task_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, task_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not representable(moment):
            raise ValueError("naive time, or out of range")
        return moment, UUID(task_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as error:
        raise BadCursor("the cursor is not one this service issued") from error
