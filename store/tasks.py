"""Task reads and writes for the HTTP layer: create, list, read, replay, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import delete, func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from store.cursor import decode_cursor, encode_cursor
from store.database import transaction
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


class TaskStore:
    """The queries behind the task routes; every one is scoped to its user."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, task: NewTask, upload: NewUpload) -> tuple[UUID, bool]:
        """Insert task, audio and its first event at once. (id, False) for a repeated key."""
        task_id = uuid4()
        async with transaction(self._engine) as db:
            added = await db.execute(
                pg_insert(TaskRow)
                .values(
                    id=task_id,
                    user_id=task.user_id,
                    title=task.title,
                    text_id=task.text_id,
                    reference_text=task.reference_text,
                    language=task.language,
                    status=Status.CREATED.value,
                    last_seq=1,
                    idempotency_key=task.idempotency_key,
                )
                .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
                .returning(TaskRow.created_at)
            )
            created_at = added.scalar_one_or_none()
            if created_at is None:
                existing = await db.execute(
                    select(TaskRow.id).where(
                        TaskRow.user_id == task.user_id,
                        TaskRow.idempotency_key == task.idempotency_key,
                    )
                )
                return existing.scalar_one(), False
            await db.execute(
                insert(EventRow).values(
                    task_id=task_id,
                    seq=1,
                    type=EventType.STATUS.value,
                    status=Status.CREATED.value,
                    payload={},
                    created_at=created_at,
                )
            )
            await db.execute(
                insert(AudioRow).values(
                    task_id=task_id,
                    filename=upload.filename,
                    content_type=upload.content_type,
                    size=len(upload.data),
                    sha256=upload.sha256,
                    sample_rate=upload.sample_rate,
                    channels=upload.channels,
                    data=upload.data,
                )
            )
        return task_id, True

    async def get(self, user_id: UUID, task_id: UUID) -> TaskRecord | None:
        query = (
            select(*_RECORD_COLUMNS, AudioRow.duration)
            .outerjoin(AudioRow, AudioRow.task_id == TaskRow.id)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        )
        async with transaction(self._engine) as db:
            row = (await db.execute(query)).first()
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
        async with transaction(self._engine) as db:
            rows = (await db.execute(select_)).all()
        items = [TaskSummary(**row._mapping) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
        return Page(items, cursor)

    async def owned(self, user_id: UUID, task_id: UUID) -> str | None:
        """The task's status if the user owns it, else None."""
        query = select(TaskRow.status).where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        async with transaction(self._engine) as db:
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
        async with transaction(self._engine) as db:
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
        async with transaction(self._engine) as db:
            row = (await db.execute(query)).first()
        return None if row is None else StoredAudio(**row._mapping)

    async def delete(self, user_id: UUID, task_id: UUID) -> bool:
        """Remove the task, its events and audio (cascade). False if it was not there."""
        query = delete(TaskRow).where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        async with transaction(self._engine) as db:
            return (await db.execute(query.returning(TaskRow.id))).first() is not None

    async def count(self) -> int:
        async with transaction(self._engine) as db:
            return int((await db.execute(select(func.count()).select_from(TaskRow))).scalar_one())
