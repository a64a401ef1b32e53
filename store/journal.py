"""The supervisor's ``Journal`` over PostgreSQL: one statement per transition."""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, String, bindparam, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from speech.base import AudioInput, NormalisedAudio
from store.database import Database
from store.models import TERMINAL_SQL, AudioRow, EventRow, TaskRow
from store.records import snapshot_of
from store.sql import Query, compile_query
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import TERMINAL, Status
from supervisor.ports import StaleWrite, TaskSnapshot

_T = TaskRow.__table__
_SNAPSHOT_COLUMNS = (
    TaskRow.id,
    TaskRow.status,
    TaskRow.last_seq,
    TaskRow.attempt,
    TaskRow.language,
    TaskRow.reference_text,
    TaskRow.text_id,
    TaskRow.transcript,
    TaskRow.words,
    TaskRow.phonemes,
)


#: Marks a column set to the transaction's time (``now()``) rather than to a value.
_NOW: Any = object()


@functools.lru_cache(maxsize=128)
def _append_statement(columns: tuple[tuple[str, bool], ...], *, keeps_audio: bool) -> Query:
    """Update the task if it is still at ``after_seq`` and, only then, insert the event
    (and, with ``keeps_audio``, store the decoded audio).

    One statement (data-modifying CTEs), built once per set of columns: the
    transitions set a handful of different column sets, so the cache stays tiny.
    """
    sets: dict[str, Any] = {
        name: func.now() if now else bindparam(f"v_{name}") for name, now in columns
    }
    moved = (
        update(TaskRow)
        .where(TaskRow.id == bindparam("task_id"), TaskRow.last_seq == bindparam("after_seq"))
        .values(sets)
        .returning(TaskRow.updated_at)
        .cte("moved")
    )
    statement = (
        insert(EventRow)
        .from_select(
            ["task_id", "seq", "type", "status", "payload", "created_at"],
            select(
                bindparam("e_task_id", type_=PgUUID),
                bindparam("e_seq", type_=Integer),
                bindparam("e_type", type_=String),
                bindparam("e_status", type_=String),
                bindparam("e_payload", type_=JSONB),
                moved.c.updated_at,
            ),
        )
        .returning(EventRow.created_at)
    )
    if keeps_audio:
        kept = (
            update(AudioRow)
            .where(AudioRow.task_id == bindparam("task_id"), exists(select(moved.c.updated_at)))
            .values(pcm=bindparam("pcm"), duration=bindparam("duration"))
        )
        statement = statement.add_cte(kept.cte("kept"))
    return compile_query(statement, idempotent=False)


_LOAD = compile_query(
    select(*_SNAPSHOT_COLUMNS).where(TaskRow.id == bindparam("id")), idempotent=True
)
_UPLOAD = compile_query(
    select(
        AudioRow.data,
        AudioRow.content_type,
        AudioRow.filename,
        AudioRow.sample_rate,
        AudioRow.channels,
    ).where(AudioRow.task_id == bindparam("task_id")),
    idempotent=True,
)
_NORMALISED = compile_query(
    select(AudioRow.pcm, AudioRow.duration).where(AudioRow.task_id == bindparam("task_id")),
    idempotent=True,
)
_RUNNABLE = compile_query(
    select(*_SNAPSHOT_COLUMNS)
    # The partial index's own predicate, as text, so the planner matches it to ix_tasks_live.
    .where(text(f"tasks.status NOT IN {TERMINAL_SQL}"))
    .order_by(TaskRow.created_at),
    idempotent=True,
)


class PgJournal:
    """Durable task state in PostgreSQL (implements ``supervisor.ports.Journal``)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def load(self, task_id: UUID) -> TaskSnapshot | None:
        row = await self._database.row(_LOAD, id=task_id)
        return None if row is None else snapshot_of(row)

    async def append(
        self,
        task_id: UUID,
        after_seq: int,
        change: Change,
        normalised: NormalisedAudio | None = None,
    ) -> Event:
        seq = after_seq + 1
        values: dict[str, Any] = {
            "status": change.status.value,
            "last_seq": seq,
            "updated_at": _NOW,
            **change.fields,
        }
        if change.type is EventType.STATUS:
            if change.status is Status.STARTED:
                values["started_at"] = _NOW
            if change.status in TERMINAL:
                values["completed_at"] = _NOW
            if change.status is Status.CREATED:
                values["started_at"] = values["completed_at"] = None
        params = {f"v_{name}": value for name, value in values.items() if value is not _NOW}
        params.update(
            task_id=task_id,
            after_seq=after_seq,
            e_task_id=task_id,
            e_seq=seq,
            e_type=change.type.value,
            e_status=change.status.value,
            e_payload=change.payload,
        )
        if normalised is not None:
            params.update(pcm=normalised.pcm, duration=normalised.duration)
        event = _append_statement(
            tuple(sorted((k, v is _NOW) for k, v in values.items())),
            keeps_audio=normalised is not None,
        )
        created_at = await self._database.value(event, **params)
        if created_at is None:
            raise StaleWrite(f"task {task_id} is not at seq {after_seq}")
        return Event(task_id, seq, change.type, change.status, change.payload, created_at)

    async def load_upload(self, task_id: UUID) -> AudioInput:
        row = await self._database.row(_UPLOAD, task_id=task_id)
        if row is None:
            raise LookupError(f"task {task_id} has no upload")
        return AudioInput(row.data, row.content_type, row.filename, row.sample_rate, row.channels)

    async def load_normalised(self, task_id: UUID) -> NormalisedAudio | None:
        row = await self._database.row(_NORMALISED, task_id=task_id)
        if row is None or row.pcm is None or row.duration is None:
            return None
        return NormalisedAudio(row.pcm, row.duration)

    async def runnable(self) -> list[TaskSnapshot]:
        return [snapshot_of(row) for row in await self._database.rows(_RUNNABLE)]
