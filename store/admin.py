"""The operator's reads across every user: task pages, counts, owners, failed tasks."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    DateTime,
    Integer,
    String,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
)

from store.cursor import decode_cursor, encode_cursor
from store.database import Database
from store.models import StatusCountRow, TaskRow
from store.sql import Query, compile_query
from supervisor.lifecycle import Status


@dataclass(frozen=True)
class AdminSummary:
    """A line of the operator's task list: whose task, and why it failed."""

    id: UUID
    user_id: UUID
    title: str
    status: str
    attempt: int
    accuracy: float | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AdminFilter:
    statuses: tuple[str, ...] = ()
    user_id: UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class AdminPage:
    items: list[AdminSummary]
    next_cursor: str | None


_COLUMNS = [getattr(TaskRow, f.name) for f in fields(AdminSummary)]
#: The most failed tasks one bulk retry takes; the operator repeats it for more.
BULK_LIMIT = 500


@functools.lru_cache(maxsize=64)
def _statement(*, ids_only: bool, cursor: bool, **present: bool) -> Query:
    """Tasks matching the filters present, newest first; one compiled form per set."""
    query = select(TaskRow.id) if ids_only else select(*_COLUMNS)
    if present["statuses"]:
        query = query.where(TaskRow.status == any_(bindparam("statuses", type_=ARRAY(String))))
    if present["user_id"]:
        query = query.where(TaskRow.user_id == bindparam("user_id", type_=TaskRow.user_id.type))
    if present["created_after"]:
        query = query.where(TaskRow.created_at > bindparam("created_after"))
    if present["created_before"]:
        query = query.where(TaskRow.created_at < bindparam("created_before"))
    if cursor:
        query = query.where(
            tuple_(TaskRow.created_at, TaskRow.id)
            < tuple_(
                bindparam("cursor_created_at", type_=DateTime(timezone=True)),
                bindparam("cursor_id", type_=TaskRow.id.type),
            )
        )
    query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(
        bindparam("limit", type_=Integer)
    )
    return compile_query(query, idempotent=True)


def _params(where: AdminFilter) -> dict[str, Any]:
    values = {
        "statuses": list(where.statuses) or None,
        "user_id": where.user_id,
        "created_after": where.created_after,
        "created_before": where.created_before,
    }
    return {name: value for name, value in values.items() if value is not None}


def _present(params: dict[str, Any]) -> dict[str, bool]:
    names = ("statuses", "user_id", "created_after", "created_before")
    return {name: name in params for name in names}


#: The tasks per status, from the counts the triggers on ``tasks`` keep (migration
#: 0008): a sum over at most a few thousand rows however many tasks there are, where a
#: count over ``tasks`` would read the whole table.
_BY_STATUS = compile_query(
    select(StatusCountRow.status, func.sum(StatusCountRow.n))
    .group_by(StatusCountRow.status)
    .having(func.sum(StatusCountRow.n) != literal_column("0")),
    idempotent=True,
)
_OWNER = compile_query(
    select(TaskRow.user_id).where(TaskRow.id == bindparam("id")), idempotent=True
)


class AdminStore:
    """Queries for operators only: unlike TaskStore, none is scoped to one user."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def page(self, where: AdminFilter, limit: int, cursor: str | None) -> AdminPage:
        params = _params(where)
        statement = _statement(ids_only=False, cursor=bool(cursor), **_present(params))
        if cursor:
            params["cursor_created_at"], params["cursor_id"] = decode_cursor(cursor)
        rows = await self._database.rows(statement, limit=limit + 1, **params)
        items = [AdminSummary(*row) for row in rows[:limit]]  # columns in field order
        more = len(rows) > limit and items
        return AdminPage(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def failed(self, where: AdminFilter) -> list[UUID]:
        """The newest failed tasks matching the filter (its statuses aside), at most
        ``BULK_LIMIT``."""
        params = _params(replace(where, statuses=(Status.FAILED.value,)))
        statement = _statement(ids_only=True, cursor=False, **_present(params))
        rows = await self._database.rows(statement, limit=BULK_LIMIT, **params)
        return [row[0] for row in rows]

    async def counts(self) -> dict[str, int]:
        """How many tasks are in each status."""
        return {row[0]: int(row[1]) for row in await self._database.rows(_BY_STATUS)}

    async def owner(self, task_id: UUID) -> UUID | None:
        found: UUID | None = await self._database.value(_OWNER, id=task_id)
        return found
