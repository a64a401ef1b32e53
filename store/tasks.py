"""Task reads and writes for the HTTP layer: create, list, read, replay, delete, purge."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, OID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from store.cursor import decode_cursor, encode_cursor
from store.database import Database, Row
from store.fingerprint import request_fingerprint
from store.models import TERMINAL_SQL, AudioRow, EventRow, LiveTaskRow, TaskRow
from store.records import NewTask, NewUpload, StoredAudio, TaskRecord, TaskSummary
from store.sql import Query, compile_query
from supervisor.claims import Claims
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
            request_fingerprint=bindparam("request_fingerprint"),
            webhook_url=bindparam("webhook_url"),
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
    columns = ["filename", "content_type", "size", "sha256", "sample_rate", "channels"]
    # A large upload was streamed into a large object first (Database.row_with_upload).
    data = func.coalesce(
        bindparam("a_data", type_=_AUDIO.c.data.type),
        func.lo_get(bindparam("a_oid", type_=OID), type_=_AUDIO.c.data.type),
    )
    audio = insert(AudioRow).from_select(
        ["task_id", *columns, "data"],
        select(added.c.id, *(bindparam(f"a_{c}", type_=_AUDIO.c[c].type) for c in columns), data),
    )
    # Live until it ends: owned by the admitting instance when it has room (generation
    # 0), else by nobody until an instance with room claims it.
    live = insert(LiveTaskRow).from_select(
        ["task_id", "owner", "generation", "queued_at"],
        select(
            added.c.id,
            bindparam("l_owner", type_=LiveTaskRow.owner.type),
            literal(0, BigInteger),
            added.c.created_at,
        ),
    )
    return select(added).add_cte(event.cte("event"), audio.cte("audio"), live.cte("live"))


@functools.lru_cache(maxsize=16)
def _page_statement(
    *, cursor: bool, statuses: bool, created_after: bool, created_before: bool
) -> Query:
    """A page of a user's tasks, newest first; one compiled form per set of filters."""
    query = select(*_SUMMARY_COLUMNS).where(TaskRow.user_id == bindparam("user_id"))
    if cursor:
        query = query.where(
            tuple_(TaskRow.created_at, TaskRow.id)
            < tuple_(
                bindparam("cursor_created_at", type_=DateTime(timezone=True)),
                bindparam("cursor_id", type_=TaskRow.id.type),
            )
        )
    if statuses:
        query = query.where(TaskRow.status == any_(bindparam("statuses", type_=ARRAY(String))))
    if created_after:
        query = query.where(TaskRow.created_at > bindparam("created_after"))
    if created_before:
        query = query.where(TaskRow.created_at < bindparam("created_before"))
    query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(
        bindparam("limit", type_=Integer)
    )
    return compile_query(query, idempotent=True)


_ADMIT = compile_query(_admit_statement(), idempotent=False)
_GET = compile_query(
    select(*_RECORD_COLUMNS, AudioRow.duration)
    .outerjoin(AudioRow, AudioRow.task_id == TaskRow.id)
    .where(TaskRow.id == bindparam("id"), TaskRow.user_id == bindparam("user_id")),
    idempotent=True,
)
_BY_KEY = compile_query(
    select(TaskRow.id, TaskRow.request_fingerprint).where(
        TaskRow.user_id == bindparam("user_id"),
        TaskRow.idempotency_key == bindparam("idempotency_key"),
    ),
    idempotent=True,
)
_OWNED = compile_query(
    select(TaskRow.status).where(
        TaskRow.id == bindparam("id"), TaskRow.user_id == bindparam("user_id")
    ),
    idempotent=True,
)
_EVENTS_AFTER = compile_query(
    select(
        EventRow.task_id,
        EventRow.seq,
        EventRow.type,
        EventRow.status,
        EventRow.payload,
        EventRow.created_at,
    )
    .where(EventRow.task_id == bindparam("task_id"), EventRow.seq > bindparam("seq"))
    .order_by(EventRow.seq),
    idempotent=True,
)
_AUDIO_OF = compile_query(
    select(AudioRow.data, AudioRow.filename, AudioRow.content_type)
    .join(TaskRow, TaskRow.id == AudioRow.task_id)
    .where(TaskRow.id == bindparam("id"), TaskRow.user_id == bindparam("user_id")),
    idempotent=True,
)
#: Locks the live row first, as every fenced write does (``store.journal``: the live
#: row, then the task row): the cascade would otherwise lock them the other way round,
#: and a delete meeting a write of the same task was a deadlock (one of them aborted).
#: The count is a one-time filter: it runs before the scan locks the task row.
_DELETE = Query(
    """
    WITH live AS MATERIALIZED (
        SELECT task_id FROM live_tasks WHERE task_id = $1 FOR UPDATE
    )
    DELETE FROM tasks WHERE id = $1 AND user_id = $2 AND (SELECT count(*) FROM live) >= 0
    RETURNING id
    """,
    ("id", "user_id"),
    {},
    idempotent=False,  # run again after a commit whose answer was lost, it would say "gone"
)
#: Inserts tried when the task holding the key is deleted between insert and lookup.
_ADMIT_TRIES = 3


class KeyReused(Exception):
    """The idempotency key was used before with a different request."""


class KeyContended(Exception):
    """The task holding the key kept vanishing (deleted) while this request was admitted."""


_COUNT = compile_query(select(func.count()).select_from(TaskRow), idempotent=True)

#: The advisory lock key of retention purges (any constant: "stmpurge" in ASCII).
PURGE_LOCK = 0x73746D7075726765
# Text, so the planner matches the partial index ix_tasks_ended.
_ENDED_BEFORE = text(
    f"tasks.status IN {TERMINAL_SQL} AND tasks.completed_at < now() - make_interval(days => :days)"
)
# A scalar subquery: evaluated once per statement, and only one instance's statement
# gets the lock; the others remove nothing this time.
_PURGE_LOCKED = select(func.pg_try_advisory_xact_lock(literal(PURGE_LOCK))).scalar_subquery()


def _ended(*columns: Any) -> Select[Any]:
    return select(*columns).where(_ENDED_BEFORE, _PURGE_LOCKED)


_PURGE_AUDIO = compile_query(
    update(AudioRow)
    .where(
        AudioRow.task_id.in_(
            _ended(AudioRow.task_id)
            .join_from(TaskRow, AudioRow, AudioRow.task_id == TaskRow.id)
            .where(AudioRow.size > 0)
            .limit(bindparam("batch", type_=Integer))
            .with_for_update(of=AudioRow, skip_locked=True)
        )
    )
    # An upload is never empty, so size 0 marks audio removed; the row keeps the duration.
    .values(data=b"", pcm=None, size=0)
    .returning(AudioRow.task_id),
    idempotent=False,
)
_PURGE_TASKS = compile_query(
    delete(TaskRow)
    .where(
        TaskRow.id.in_(
            _ended(TaskRow.id)
            .limit(bindparam("batch", type_=Integer))
            .with_for_update(skip_locked=True)
        )
    )
    .returning(TaskRow.id),
    idempotent=False,
)
_AUDIO_REMOVED = compile_query(
    select(AudioRow.size == literal_column("0")).where(AudioRow.task_id == bindparam("id")),
    idempotent=True,
)


class TaskStore:
    """The queries behind the task routes; every one is scoped to its user."""

    def __init__(self, database: Database, claims: Claims | None = None) -> None:
        self._database = database
        #: The cluster's view of this instance: who runs what it admits.
        self._claims = claims

    async def create(self, task: NewTask, upload: NewUpload) -> tuple[UUID, bool]:
        """Insert task, audio and its first event at once. (id, False) for a repeated key."""
        record, created = await self.admit(task, upload)
        return record.id, created

    async def admit(self, task: NewTask, upload: NewUpload) -> tuple[TaskRecord, bool]:
        """``create``, answering the task as stored (the existing one for a repeated key).

        Task, event and audio go in one statement (data-modifying CTEs): one round
        trip, and all three rows or none. A repeated key with a different request is
        ``KeyReused``. If the task holding the key is deleted after the insert met it,
        the key is free again and the insert is tried once more: the repeat makes a
        new task (``KeyContended`` if that keeps happening).
        """
        fingerprint = None
        if task.idempotency_key is not None:
            fingerprint = request_fingerprint(task, upload)
        for _ in range(_ADMIT_TRIES):
            admitted = await self._insert_or_find(task, upload, fingerprint)
            if admitted is not None:
                return admitted
        raise KeyContended(task.idempotency_key)

    async def _insert_or_find(
        self, task: NewTask, upload: NewUpload, fingerprint: str | None
    ) -> tuple[TaskRecord, bool] | None:
        """The new task, or the one holding the key; None if that one has just gone."""
        owner = self._claims.new_owner() if self._claims is not None else None
        try:
            row = await self._admit_row(task, upload, fingerprint, owner)
        except asyncpg.ForeignKeyViolationError:
            if owner is None:
                raise
            # This instance was presumed dead (its row is gone) and has not heard yet:
            # the task waits unowned for a claim (its own, once it has joined again).
            owner = None
            row = await self._admit_row(task, upload, fingerprint, owner)
        if row is not None:
            if owner is not None and self._claims is not None:
                self._claims.hold(row.id, 0)
            return TaskRecord(**row), True
        holder = await self._database.row(
            _BY_KEY, user_id=task.user_id, idempotency_key=task.idempotency_key
        )
        if holder is None:
            return None
        stored = holder.request_fingerprint
        if stored is not None and fingerprint is not None and stored != fingerprint:
            raise KeyReused(task.idempotency_key)
        record = await self.get(task.user_id, holder.id)
        return None if record is None else (record, False)

    async def _admit_row(
        self, task: NewTask, upload: NewUpload, fingerprint: str | None, owner: UUID | None
    ) -> Row | None:
        """The admitting statement: small bytes as a parameter, a spooled upload streamed
        in chunks (never held whole in memory)."""
        params: dict[str, Any] = dict(
            id=uuid4(),
            user_id=task.user_id,
            title=task.title,
            text_id=task.text_id,
            reference_text=task.reference_text,
            language=task.language,
            idempotency_key=task.idempotency_key,
            request_fingerprint=fingerprint,
            webhook_url=task.webhook_url,
            a_filename=upload.filename,
            a_content_type=upload.content_type,
            a_size=upload.size,
            a_sha256=upload.sha256,
            a_sample_rate=upload.sample_rate,
            a_channels=upload.channels,
            l_owner=owner,
        )
        if isinstance(upload.data, bytes):
            return await self._database.row(_ADMIT, a_data=upload.data, a_oid=None, **params)
        params["a_data"] = None
        return await self._database.row_with_upload(_ADMIT, upload.data.chunks(), **params)

    async def get(self, user_id: UUID, task_id: UUID) -> TaskRecord | None:
        row = await self._database.row(_GET, id=task_id, user_id=user_id)
        return None if row is None else TaskRecord(*row)  # columns in field order

    async def page(self, query: ListQuery) -> Page:
        """One page of a user's tasks, newest first, by keyset on (created_at, id)."""
        params: dict[str, Any] = {"user_id": query.user_id, "limit": query.limit + 1}
        if query.cursor:
            params["cursor_created_at"], params["cursor_id"] = decode_cursor(query.cursor)
        if query.statuses:
            params["statuses"] = list(query.statuses)
        if query.created_after:
            params["created_after"] = query.created_after
        if query.created_before:
            params["created_before"] = query.created_before
        statement = _page_statement(
            cursor=bool(query.cursor),
            statuses=bool(query.statuses),
            created_after=bool(query.created_after),
            created_before=bool(query.created_before),
        )
        rows = await self._database.rows(statement, **params)
        items = [TaskSummary(*row) for row in rows[: query.limit]]  # columns in field order
        more = len(rows) > query.limit
        cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
        return Page(items, cursor)

    async def owned(self, user_id: UUID, task_id: UUID) -> str | None:
        """The task's status if the user owns it, else None."""
        status: str | None = await self._database.value(_OWNED, id=task_id, user_id=user_id)
        return status

    async def events_after(self, task_id: UUID, seq: int) -> list[Event]:
        """The journal after ``seq``, in order: what a reconnecting client missed."""
        rows = await self._database.rows(_EVENTS_AFTER, task_id=task_id, seq=seq)
        return [
            Event(r.task_id, r.seq, EventType(r.type), Status(r.status), r.payload, r.created_at)
            for r in rows
        ]

    async def audio(self, user_id: UUID, task_id: UUID) -> StoredAudio | None:
        row = await self._database.row(_AUDIO_OF, id=task_id, user_id=user_id)
        return None if row is None else StoredAudio(**row)

    async def delete(self, user_id: UUID, task_id: UUID) -> bool:
        """Remove the task, its events and audio (cascade). False if it was not there."""
        return await self._database.row(_DELETE, id=task_id, user_id=user_id) is not None

    async def audio_removed(self, task_id: UUID) -> bool:
        """Whether retention removed the task's audio (or it has none)."""
        return bool(await self._database.value(_AUDIO_REMOVED, id=task_id) in (True, None))

    async def purge_audio(self, days: int, batch: int) -> list[UUID]:
        """Remove the audio of up to ``batch`` tasks that ended over ``days`` days ago.

        Live tasks are never touched; nothing is removed while another instance purges.
        """
        rows = await self._database.rows(_PURGE_AUDIO, days=days, batch=batch)
        return [row.task_id for row in rows]

    async def purge_tasks(self, days: int, batch: int) -> list[UUID]:
        """Remove up to ``batch`` whole tasks (events, audio, deliveries) that ended over
        ``days`` days ago; live tasks never, and nothing while another instance purges."""
        rows = await self._database.rows(_PURGE_TASKS, days=days, batch=batch)
        return [row.id for row in rows]

    async def count(self) -> int:
        return int(await self._database.value(_COUNT))
