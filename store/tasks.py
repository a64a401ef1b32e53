"""Task reads and writes for the HTTP layer: create, list, read, replay, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from store.cursor import decode_cursor, encode_cursor
from store.database import statement
from store.models import AudioRow, EventRow, TaskRow
from store.records import NewTask, NewUpload, StoredAudio, TaskRecord, TaskSummary
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status

_RECORD_COLUMNS = [getattr(TaskRow, f.name) for f in fields(TaskRecord) if f.name != "duration"]
_SUMMARY_COLUMNS = [getattr(TaskRow, f.name) for f in fields(TaskSummary)]


@dataclass(frozen=True)
class Page:
    items: list[TaskSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class ListQuery:
    user_id: UUID
    limit: int = 20
    cursor: str | None = None
    statuses: Sequence[str] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None


_AUDIO = AudioRow.__table__


def _admit_statement() -> Select[Any]:
    """Insert the task (unless its idempotency key is taken), its first event and audio."""
    added = (
        pg_insert(TaskRow)
        .values(
            id=bindparam("id"),
            user_id=bindparam("user_id"),
            title=bindparam("title"),
            text_id=bindparam("text_id"),
            reference_text=bindparam("reference_text"),
            language=bindparam("language"),
            status=Status.CREATED.value,
            last_seq=1,
            idempotency_key=bindparam("idempotency_key"),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
        .returning(*_RECORD_COLUMNS)
        .cte("added")
    )
    event = insert(EventRow).from_select(
        ["task_id", "seq", "type", "status", "payload", "created_at"],
        select(
            added.c.id,
            literal(1, Integer),
            literal(EventType.STATUS.value, String),
            literal(Status.CREATED.value, String),
            literal({}, JSONB),
            added.c.created_at,
        ),
    )
    columns = ["filename", "content_type", "size", "sha256", "sample_rate", "channels", "data"]
    audio = insert(AudioRow).from_select(
        ["task_id", *columns],
        select(added.c.id, *(bindparam(f"a_{c}", type_=_AUDIO.c[c].type) for c in columns)),
    )
    return select(added).add_cte(event.cte("event"), audio.cte("audio"))


# Built once: a constant statement's cache key is memoised, so its compiled form is reused.
_ADMIT = _admit_statement()
_GET = (
    select(*_RECORD_COLUMNS, AudioRow.duration)
    .outerjoin(AudioRow, AudioRow.task_id == TaskRow.id)
    .where(TaskRow.id == bindparam("id"), TaskRow.user_id == bindparam("user_id"))
)


class TaskStore:
    """The queries behind the task routes; every one is scoped to its user."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, task: NewTask, upload: NewUpload) -> tuple[UUID, bool]:
        """Insert task, audio and its first event at once. (id, False) for a repeated key."""
        record, created = await self.admit(task, upload)
        return record.id, created

    async def admit(self, task: NewTask, upload: NewUpload) -> tuple[TaskRecord, bool]:
        """``create``, answering the task as stored (the existing one for a repeated key).

        Task, event and audio go in one statement (data-modifying CTEs): one round
        trip, and all three rows or none.
        """
        params = {
            "id": uuid4(),
            "user_id": task.user_id,
            "title": task.title,
            "text_id": task.text_id,
            "reference_text": task.reference_text,
            "language": task.language,
            "idempotency_key": task.idempotency_key,
            "a_filename": upload.filename,
            "a_content_type": upload.content_type,
            "a_size": len(upload.data),
            "a_sha256": upload.sha256,
            "a_sample_rate": upload.sample_rate,
            "a_channels": upload.channels,
            "a_data": upload.data,
        }
        async with statement(self._engine) as db:
            row = (await db.execute(_ADMIT, params)).first()
            if row is not None:
                return TaskRecord(**row._mapping), True
            existing = await db.execute(
                select(TaskRow.id).where(
                    TaskRow.user_id == task.user_id,
                    TaskRow.idempotency_key == task.idempotency_key,
                )
            )
            task_id = existing.scalar_one()
        record = await self.get(task.user_id, task_id)
        assert record is not None  # only a DELETE racing the same user's retry can miss it
        return record, False

    async def get(self, user_id: UUID, task_id: UUID) -> TaskRecord | None:
        async with statement(self._engine) as db:
            row = (await db.execute(_GET, {"id": task_id, "user_id": user_id})).first()
        return None if row is None else TaskRecord(**row._mapping)

    async def page(self, query: ListQuery) -> Page:
        """One page of a user's tasks, newest first, by keyset on (created_at, id)."""
        select_ = select(*_SUMMARY_COLUMNS).where(TaskRow.user_id == query.user_id)
        if query.cursor:
            created_at, task_id = decode_cursor(query.cursor)
            select_ = select_.where(tuple_(TaskRow.created_at, TaskRow.id) < (created_at, task_id))
        if query.statuses:
            select_ = select_.where(TaskRow.status.in_(list(query.statuses)))
        if query.created_after:
            select_ = select_.where(TaskRow.created_at > query.created_after)
        if query.created_before:
            select_ = select_.where(TaskRow.created_at < query.created_before)
        select_ = select_.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(
            query.limit + 1
        )
        async with statement(self._engine) as db:
            rows = (await db.execute(select_)).all()
        items = [TaskSummary(**row._mapping) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
        return Page(items, cursor)

    async def owned(self, user_id: UUID, task_id: UUID) -> str | None:
        """The task's status if the user owns it, else None."""
        query = select(TaskRow.status).where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        async with statement(self._engine) as db:
            return (await db.execute(query)).scalar_one_or_none()

    async def events_after(self, task_id: UUID, seq: int) -> list[Event]:
        """The journal after ``seq``, in order: what a reconnecting client missed."""
        query = (
            select(
                EventRow.task_id,
                EventRow.seq,
                EventRow.type,
                EventRow.status,
                EventRow.payload,
                EventRow.created_at,
            )
            .where(EventRow.task_id == task_id, EventRow.seq > seq)
            .order_by(EventRow.seq)
        )
        async with statement(self._engine) as db:
            rows = (await db.execute(query)).all()
        return [
            Event(r.task_id, r.seq, EventType(r.type), Status(r.status), r.payload, r.created_at)
            for r in rows
        ]

    async def audio(self, user_id: UUID, task_id: UUID) -> StoredAudio | None:
        query = (
            select(AudioRow.data, AudioRow.filename, AudioRow.content_type)
            .join(TaskRow, TaskRow.id == AudioRow.task_id)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        )
        async with statement(self._engine) as db:
            row = (await db.execute(query)).first()
        return None if row is None else StoredAudio(**row._mapping)

    async def delete(self, user_id: UUID, task_id: UUID) -> bool:
        """Remove the task, its events and audio (cascade). False if it was not there."""
        query = delete(TaskRow).where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        async with statement(self._engine) as db:
            return (await db.execute(query.returning(TaskRow.id))).first() is not None

    async def count(self) -> int:
        async with statement(self._engine) as db:
            return int((await db.execute(select(func.count()).select_from(TaskRow))).scalar_one())
