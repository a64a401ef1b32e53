"""Each user's webhook signing secrets: one current, and those rotated out still inside
their overlap (Standard Webhooks: during a rotation a message carries a signature by
each, so receivers switch secrets whenever they like)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Float, bindparam, delete, func, insert, literal_column, or_, select, update

from store.database import Database
from store.models import WebhookSecretRow
from store.sql import compile_query

_SECOND: Any = literal_column("interval '1 second'")
_USER = WebhookSecretRow.user_id == bindparam("user_id")


@dataclass(frozen=True)
class Rotated:
    """A new current secret, and until when the one it replaced still signs."""

    secret: str
    created_at: datetime
    previous_valid_until: datetime | None


def _rotate_statement() -> object:
    retired = (
        update(WebhookSecretRow)
        .where(_USER, WebhookSecretRow.retired_at.is_(None))
        .values(retired_at=func.now() + _SECOND * bindparam("overlap", type_=Float))
        .returning(WebhookSecretRow.retired_at)
        .cte("retired")
    )
    expired = (
        delete(WebhookSecretRow)
        .where(_USER, WebhookSecretRow.retired_at < func.now())
        .cte("expired")
    )
    added = (
        insert(WebhookSecretRow)
        .values(user_id=bindparam("user_id"), secret=bindparam("secret"))
        .returning(WebhookSecretRow.created_at)
        .cte("added")
    )
    previous = select(func.max(retired.c.retired_at)).scalar_subquery()
    return select(added.c.created_at, previous.label("previous")).add_cte(expired)


_ROTATE = compile_query(_rotate_statement(), idempotent=False)  # type: ignore[arg-type]
_SIGNING = compile_query(
    select(WebhookSecretRow.secret)
    .where(
        _USER,
        or_(WebhookSecretRow.retired_at.is_(None), WebhookSecretRow.retired_at > func.now()),
    )
    .order_by(WebhookSecretRow.id.desc()),
    idempotent=True,
)


class WebhookSecretStore:
    """Rotate a user's secret; the secrets that sign their deliveries now."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def rotate(self, user_id: UUID, secret: str, overlap: float) -> Rotated:
        """Make ``secret`` the user's current one; the previous signs ``overlap`` s more."""
        row = await self._database.row(_ROTATE, user_id=user_id, secret=secret, overlap=overlap)
        assert row is not None  # the insert always returns its row
        return Rotated(secret, row.created_at, row.previous)

    async def signing(self, user_id: UUID) -> list[str]:
        """The user's secrets valid now, newest first (none: the user has made none)."""
        return [row.secret for row in await self._database.rows(_SIGNING, user_id=user_id)]
