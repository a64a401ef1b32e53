"""The supervisor's ``Journal`` over PostgreSQL: one transaction per transition."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from store.database import transaction
from store.models import AudioRow, EventRow, TaskRow
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import TERMINAL, Status
from supervisor.ports import StaleWrite, TaskSnapshot
from supervisor.stages.base import AudioInput, NormalisedAudio, Phoneme, Transcription, Word

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


class PgJournal:
    """Durable task state in PostgreSQL (implements ``supervisor.ports.Journal``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, task_id: UUID) -> TaskSnapshot | None:
        async with transaction(self._engine) as db:
            row = (
                await db.execute(select(*_SNAPSHOT_COLUMNS).where(TaskRow.id == task_id))
            ).first()
        if row is None:
            return None
        transcription = None
        if row.transcript is not None:
            transcription = Transcription(
                transcript=row.transcript,
                words=tuple(Word(**w) for w in row.words or ()),
                phonemes=tuple(Phoneme(**p) for p in row.phonemes or ()),
            )
        return TaskSnapshot(
            id=row.id,
            status=Status(row.status),
            seq=row.last_seq,
            attempt=row.attempt,
            language=row.language,
            reference_text=row.reference_text,
            text_id=row.text_id,
            transcription=transcription,
        )

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
            "updated_at": func.now(),
            **change.fields,
        }
        if change.type is EventType.STATUS:
            if change.status is Status.STARTED:
                values["started_at"] = func.now()
            if change.status in TERMINAL:
                values["completed_at"] = func.now()
            if change.status is Status.CREATED:
                values["started_at"] = values["completed_at"] = None
        async with transaction(self._engine) as db:
            moved = await db.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.last_seq == after_seq)
                .values(values)
                .returning(TaskRow.updated_at)
            )
            created_at = moved.scalar_one_or_none()
            if created_at is None:
                raise StaleWrite(f"task {task_id} is not at seq {after_seq}")
            await db.execute(
                insert(EventRow).values(
                    task_id=task_id,
                    seq=seq,
                    type=change.type.value,
                    status=change.status.value,
                    payload=change.payload,
                    created_at=created_at,
                )
            )
            if normalised is not None:
                await db.execute(
                    update(AudioRow)
                    .where(AudioRow.task_id == task_id)
                    .values(pcm=normalised.pcm, duration=normalised.duration)
                )
        return Event(task_id, seq, change.type, change.status, change.payload, created_at)

    async def load_upload(self, task_id: UUID) -> AudioInput:
        query = select(
            AudioRow.data,
            AudioRow.content_type,
            AudioRow.filename,
            AudioRow.sample_rate,
            AudioRow.channels,
        ).where(AudioRow.task_id == task_id)
        async with transaction(self._engine) as db:
            row = (await db.execute(query)).one()
        return AudioInput(row.data, row.content_type, row.filename, row.sample_rate, row.channels)

    async def load_normalised(self, task_id: UUID) -> NormalisedAudio | None:
        query = select(AudioRow.pcm, AudioRow.duration).where(AudioRow.task_id == task_id)
        async with transaction(self._engine) as db:
            row = (await db.execute(query)).first()
        if row is None or row.pcm is None or row.duration is None:
            return None
        return NormalisedAudio(row.pcm, row.duration)

    async def runnable(self) -> list[UUID]:
        query = (
            select(TaskRow.id)
            .where(TaskRow.status.not_in([s.value for s in TERMINAL]))
            .order_by(TaskRow.created_at)
        )
        async with transaction(self._engine) as db:
            return list((await db.execute(query)).scalars())
