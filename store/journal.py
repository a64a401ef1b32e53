"""The supervisor's ``Journal`` over PostgreSQL: one statement per transition."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from speech.base import AudioInput, NormalisedAudio
from store.database import Database
from store.deliveries import PENDING
from store.models import TERMINAL_SQL, AudioRow, DeliveryRow, EventRow, LiveTaskRow, TaskRow
from store.records import snapshot_of
from store.sql import Query, compile_query
from supervisor.claims import Claims
from supervisor.events import Change, Event, EventType
from supervisor.lifecycle import TERMINAL, Status
from supervisor.ports import Fenced, StaleWrite, TaskSnapshot

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


@dataclass(frozen=True)
class WebhookPolicy:
    """Which transitions record webhook deliveries, and whom to tell when one is."""

    #: MANAGER_WEBHOOK_URL: gets every task's deliveries.
    service_url: str | None = None
    #: Every status change, not only the terminal ones.
    every_status: bool = False
    #: Called after a transition that recorded deliveries is persisted.
    recorded: Callable[[], None] = lambda: None

    def announces(self, change: Change) -> bool:
        if change.type is not EventType.STATUS:
            return False
        return self.every_status or change.status in TERMINAL


def _outbox(moved: Any, *, service_wide: bool) -> Any:
    """Insert a pending delivery per URL that applies: the task's own, the service's."""
    own = select(
        moved.c.webhook_url.label("url"), literal(False, Boolean).label("service_wide")
    ).where(moved.c.webhook_url.is_not(None))
    targets: Any = own
    if service_wide:
        service_url = bindparam("w_service_url", type_=String)
        own = own.where(moved.c.webhook_url.is_distinct_from(service_url))  # once is enough
        targets = union_all(own, select(service_url, literal(True, Boolean)))
    chosen = targets.subquery("targets")
    columns = ["id", "task_id", "user_id", "url", "service_wide", "event_type", "task_status"]
    columns += ["seq", "occurred_at", "state", "next_attempt_at"]
    return insert(DeliveryRow).from_select(
        columns,
        select(
            func.gen_random_uuid(),
            bindparam("task_id"),
            moved.c.user_id,
            chosen.c.url,
            chosen.c.service_wide,
            bindparam("w_type", type_=String),
            bindparam("e_status", type_=String),
            bindparam("e_seq", type_=Integer),
            moved.c.updated_at,
            literal(PENDING, String),
            moved.c.updated_at,
        ).select_from(moved.join(chosen, literal(True, Boolean))),
    )


class Guard(StrEnum):
    """How a write is fenced by ``live_tasks``."""

    #: Not at all: no cluster.
    NONE = "none"
    #: Only while this owner holds the task, under this generation.
    OWNED = "owned"
    #: Only while nobody owns the task (a cancel of a task no instance runs).
    UNOWNED = "unowned"


class Outbox(StrEnum):
    """Which webhook deliveries a write records with it (``_outbox``)."""

    NONE = "none"
    #: The task's own URL, if it has one.
    OWN = "own"
    #: The task's own URL and the service-wide one (``MANAGER_WEBHOOK_URL``).
    OWN_AND_SERVICE = "own_and_service"


#: The task columns a write sets, each with whether it is set to ``now()``.
Columns = tuple[tuple[str, bool], ...]


def _fence_condition(guard: Guard) -> Any:
    """The fence, as a one-time condition: PostgreSQL evaluates an uncorrelated EXISTS
    before the update's scan, so the live row is locked first (every writer locks in
    that order), and a claim or a presumed death that commits meanwhile is waited
    for and then refuses this write."""
    live = select(LiveTaskRow.task_id).where(LiveTaskRow.task_id == bindparam("task_id"))
    if guard is Guard.OWNED:
        live = live.where(
            LiveTaskRow.owner == bindparam("f_owner", type_=PgUUID),
            LiveTaskRow.generation == bindparam("f_generation", type_=BigInteger),
        )
    else:
        live = live.where(LiveTaskRow.owner.is_(None))
    return exists(live.with_for_update(read=True))


def _moved(columns: Columns, guard: Guard) -> Any:
    """The task row's update, only while it is still at ``after_seq`` (and fenced by
    ``guard``): every other part of a write runs only if this one updated the row."""
    sets: dict[str, Any] = {
        name: func.now() if now else bindparam(f"v_{name}") for name, now in columns
    }
    where = [TaskRow.id == bindparam("task_id"), TaskRow.last_seq == bindparam("after_seq")]
    if guard is not Guard.NONE:
        where.append(_fence_condition(guard))
    return (
        update(TaskRow)
        .where(*where)
        .values(sets)
        .returning(TaskRow.updated_at, TaskRow.user_id, TaskRow.webhook_url)
        .cte("moved")
    )


def _event(moved: Any) -> Any:
    """The event's insert, at the time of the row's update."""
    return insert(EventRow).from_select(
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


def _with_outbox(statement: Any, moved: Any, outbox: Outbox) -> Query:
    """The write, recording its webhook deliveries in the same statement (a crash right
    after the commit loses none); it returns the event's time, and with an outbox how
    many deliveries it recorded (the loop is woken only when there is one)."""
    if outbox is Outbox.NONE:
        return compile_query(statement.returning(EventRow.created_at), idempotent=False)
    service_wide = outbox is Outbox.OWN_AND_SERVICE
    recorded = _outbox(moved, service_wide=service_wide).returning(DeliveryRow.id).cte("outbox")
    count = select(func.count()).select_from(recorded).scalar_subquery()
    statement = statement.add_cte(recorded).returning(EventRow.created_at, count)
    return compile_query(statement, idempotent=False)


# One named statement per kind of write: the task row and its event, plus what that
# kind does besides, all in one statement (data-modifying CTEs). Each is built once per
# set of columns, guard and outbox: the transitions set a handful of column sets, so
# the caches stay tiny.


@functools.lru_cache(maxsize=64)
def _step(columns: Columns, guard: Guard, outbox: Outbox) -> Query:
    """A live task moves on (a status, progress or a retry scheduled): nothing else."""
    moved = _moved(columns, guard)
    return _with_outbox(_event(moved), moved, outbox)


@functools.lru_cache(maxsize=16)
def _step_keeping_audio(columns: Columns, guard: Guard, outbox: Outbox) -> Query:
    """A step that stores the decoded audio with it (the decoding succeeded)."""
    moved = _moved(columns, guard)
    kept = (
        update(AudioRow)
        .where(AudioRow.task_id == bindparam("task_id"), exists(select(moved.c.updated_at)))
        .values(pcm=bindparam("pcm"), duration=bindparam("duration"))
    )
    return _with_outbox(_event(moved).add_cte(kept.cte("kept")), moved, outbox)


@functools.lru_cache(maxsize=32)
def _end(columns: Columns, guard: Guard, outbox: Outbox) -> Query:
    """A terminal status: the task leaves ``live_tasks`` (and its owner's claim) at once."""
    moved = _moved(columns, guard)
    left = delete(LiveTaskRow).where(
        LiveTaskRow.task_id == bindparam("task_id"), exists(select(moved.c.updated_at))
    )
    return _with_outbox(_event(moved).add_cte(left.cte("left_live")), moved, outbox)


@functools.lru_cache(maxsize=16)
def _requeue(columns: Columns, outbox: Outbox) -> Query:
    """The user runs a failed or cancelled task again (unfenced: no instance owns an
    ended task): it is live again, run by ``l_owner``, or by nobody until a claim."""
    moved = _moved(columns, Guard.NONE)
    back = (
        pg_insert(LiveTaskRow)
        .from_select(
            ["task_id", "owner", "generation", "queued_at"],
            select(
                bindparam("task_id", type_=PgUUID),
                bindparam("l_owner", type_=PgUUID),
                literal(0, BigInteger),
                moved.c.updated_at,
            ),
        )
        .on_conflict_do_nothing(index_elements=["task_id"])
    )
    return _with_outbox(_event(moved).add_cte(back.cte("back_live")), moved, outbox)


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
#: Why a write was refused: the task's seq, and its live row (owner and generation).
_REFUSAL = compile_query(
    select(
        TaskRow.last_seq,
        LiveTaskRow.task_id.is_not(None).label("live"),
        LiveTaskRow.owner,
        LiveTaskRow.generation,
    )
    .outerjoin(LiveTaskRow, LiveTaskRow.task_id == TaskRow.id)
    .where(TaskRow.id == bindparam("task_id")),
    idempotent=True,
)
#: The task's last event, if it is event ``seq``: only the latest write can be one whose
#: answer was lost (an actor on an older snapshot writes an earlier seq, and identical
#: earlier events, "queued" say, must not let it run the task's stages again).
_LAST_EVENT_AT = compile_query(
    select(EventRow.type, EventRow.status, EventRow.payload, EventRow.created_at)
    .join(TaskRow, TaskRow.id == EventRow.task_id)
    .where(
        EventRow.task_id == bindparam("task_id"),
        EventRow.seq == bindparam("seq"),
        TaskRow.last_seq == bindparam("seq"),
    ),
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

    def __init__(
        self,
        database: Database,
        webhooks: WebhookPolicy | None = None,
        claims: Claims | None = None,
    ) -> None:
        self._database = database
        self._webhooks = webhooks or WebhookPolicy()
        #: The tasks this instance holds; None: no cluster, writes are not fenced.
        self._claims = claims

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
        webhooks = self._webhooks
        outbox = webhooks.announces(change)
        if outbox:
            params.update(w_type=f"task.{change.status.value}", w_service_url=webhooks.service_url)
        columns = tuple(sorted((k, v is _NOW) for k, v in values.items()))
        terminal = change.type is EventType.STATUS and change.status in TERMINAL
        if not outbox:
            kind = Outbox.NONE
        elif webhooks.service_url is None:
            kind = Outbox.OWN
        else:
            kind = Outbox.OWN_AND_SERVICE
        new_owner: UUID | None = None
        guard = Guard.NONE
        requeue = change.type is EventType.STATUS and change.status is Status.CREATED
        if normalised is not None and (requeue or terminal):
            raise ValueError("only a step of a live task keeps decoded audio")
        if requeue:
            new_owner = self._new_owner(params)
            event = _requeue(columns, kind)
        else:
            guard = self._guard(task_id, params)
            if terminal:
                event = _end(columns, guard, kind)
            elif normalised is not None:
                event = _step_keeping_audio(columns, guard, kind)
            else:
                event = _step(columns, guard, kind)
        try:
            row = await self._database.row(event, **params)
        except asyncpg.ForeignKeyViolationError:
            if new_owner is None:
                raise
            # This instance was presumed dead and has not heard yet: the new attempt
            # waits unowned for a claim (its own, once it has joined again).
            params["l_owner"] = new_owner = None
            row = await self._database.row(event, **params)
        if row is None:
            refusal = await self._refusal(task_id, after_seq, guard, params)
            landed = None if isinstance(refusal, Fenced) else await self._landed(task_id, seq)
            if landed is None or (landed.type, landed.status, landed.payload) != (
                change.type,
                change.status,
                change.payload,
            ):
                raise refusal
            # This very write landed and its answer was lost: it is done.
            if outbox:
                webhooks.recorded()
            return landed
        if new_owner is not None and self._claims is not None:
            # What this write recorded (the new attempt is this instance's), not a side
            # effect: a refused or a terminal write changes no claim; the end of the
            # task's supervision lets its claim go.
            self._claims.hold(task_id, 0)
        if outbox and row[1]:
            webhooks.recorded()
        return Event(task_id, seq, change.type, change.status, change.payload, row[0])

    async def _landed(self, task_id: UUID, seq: int) -> Event | None:
        """Event ``seq`` of the task as stored, if it is the task's last one."""
        row = await self._database.row(_LAST_EVENT_AT, task_id=task_id, seq=seq)
        if row is None:
            return None
        return Event(
            task_id, seq, EventType(row.type), Status(row.status), row.payload, row.created_at
        )

    async def _refusal(
        self, task_id: UUID, after_seq: int, guard: Guard, params: dict[str, Any]
    ) -> StaleWrite:
        """Why the write was refused, as the exception to raise: ``Fenced`` when the task
        is gone or its live row names another owner (or, for a write fenced by "nobody
        owns it", any owner), else ``StaleWrite`` (the seq moved on: a write whose answer
        was lost has landed, say). Nothing is changed here: the caller decides."""
        row = await self._database.row(_REFUSAL, task_id=task_id)
        if row is None:
            return Fenced(f"task {task_id} is gone")
        if row.live and guard is Guard.OWNED:
            if (row.owner, row.generation) != (params["f_owner"], params["f_generation"]):
                return Fenced(f"task {task_id} is no longer run by this instance")
        elif row.live and guard is Guard.UNOWNED and row.owner is not None:
            return Fenced(f"task {task_id} is run by another instance")
        return StaleWrite(f"task {task_id} is at seq {row.last_seq}, not {after_seq}")

    def _new_owner(self, params: dict[str, Any]) -> UUID | None:
        """Who runs a retried task's new attempt (None: it waits for a claim)."""
        owner = self._claims.new_owner() if self._claims is not None else None
        params["l_owner"] = owner
        return owner

    def _guard(self, task_id: UUID, params: dict[str, Any]) -> Guard:
        """The write's fence (its parameters go into ``params``)."""
        if self._claims is None:
            return Guard.NONE
        held = self._claims.fence(task_id)
        if held is None:
            return Guard.UNOWNED
        params.update(f_owner=held.owner, f_generation=held.generation)
        return Guard.OWNED

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
