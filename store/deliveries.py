"""The webhook outbox: deliveries recorded with their transition, claimed, tried, logged."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Float,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)

from store.database import Database
from store.models import AttemptRow, DeliveryRow
from store.sql import compile_query

#: States of a delivery.
PENDING, DELIVERED, GONE, FAILED, REFUSED = "pending", "delivered", "gone", "failed", "refused"

# Literals, not parameters, so the planner matches the partial index ix_webhook_deliveries_due.
_IS_PENDING = DeliveryRow.state == literal_column(f"'{PENDING}'")
_SECOND: Any = literal_column("interval '1 second'")


@dataclass(frozen=True)
class Due:
    """A claimed delivery, ready to send."""

    id: UUID
    task_id: UUID
    user_id: UUID
    url: str
    event_type: str
    task_status: str
    occurred_at: datetime
    attempts: int
    step: int
    #: To MANAGER_WEBHOOK_URL (signed with the service's secret), not the task's own URL.
    service_wide: bool = False


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    started_at: datetime
    duration: float
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: UUID
    url: str
    service_wide: bool
    event_type: str
    task_status: str
    seq: int
    state: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    log: list[AttemptRecord]


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, as the attempt log keeps it."""

    state: str
    started_at: datetime
    duration: float
    status_code: int | None = None
    error: str | None = None
    #: Seconds until the next try (pending only).
    delay: float | None = None


_DUE_COLUMNS = [getattr(DeliveryRow, f.name) for f in fields(Due)]
_CLAIM = compile_query(
    update(DeliveryRow)
    .where(
        DeliveryRow.id.in_(
            select(DeliveryRow.id)
            .where(_IS_PENDING, DeliveryRow.next_attempt_at <= func.now())
            .order_by(DeliveryRow.next_attempt_at)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
    )
    # Leased, not taken: if this process dies mid-send, the delivery is due again then.
    .values(
        next_attempt_at=func.now() + _SECOND * bindparam("lease", type_=Float),
        claimed_until=func.now() + _SECOND * bindparam("lease", type_=Float),
    )
    .returning(*_DUE_COLUMNS),
    idempotent=False,
)
_SECONDS_TO_NEXT = compile_query(
    select(func.extract("epoch", func.min(DeliveryRow.next_attempt_at) - func.now())).where(
        _IS_PENDING
    ),
    idempotent=True,
)


def _record_statement() -> Any:
    moved = (
        update(DeliveryRow)
        .where(DeliveryRow.id == bindparam("id"))
        .values(
            state=bindparam("state"),
            attempts=DeliveryRow.attempts + 1,
            step=DeliveryRow.step + 1,
            next_attempt_at=func.now() + _SECOND * bindparam("delay", type_=Float),
            claimed_until=None,
        )
        .returning(DeliveryRow.id, DeliveryRow.attempts, DeliveryRow.next_attempt_at)
        .cte("moved")
    )
    return insert(AttemptRow).from_select(
        ["delivery_id", "attempt", "started_at", "duration", "status_code", "error"]
        + ["next_attempt_at"],
        select(
            moved.c.id,
            moved.c.attempts,
            bindparam("started_at"),
            bindparam("duration", type_=Float),
            bindparam("status_code", type_=AttemptRow.status_code.type),
            bindparam("error", type_=AttemptRow.error.type),
            moved.c.next_attempt_at,
        ),
    )


_RECORD = compile_query(_record_statement(), idempotent=False)
_STOP_URL = compile_query(
    update(DeliveryRow)
    .where(_IS_PENDING, DeliveryRow.url == bindparam("url"))
    .values(state=GONE, next_attempt_at=None),
    idempotent=True,
)
_OF_TASK = compile_query(
    select(*(getattr(DeliveryRow, f.name) for f in fields(DeliveryRecord) if f.name != "log"))
    .where(DeliveryRow.task_id == bindparam("task_id"))
    .order_by(DeliveryRow.created_at, DeliveryRow.id),
    idempotent=True,
)
_ATTEMPTS_OF_TASK = compile_query(
    select(AttemptRow)
    .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
    .where(DeliveryRow.task_id == bindparam("task_id"))
    .order_by(AttemptRow.delivery_id, AttemptRow.attempt),
    idempotent=True,
)
#: An attempt is on its way: a redelivery now would send it a second time at once.
_IN_FLIGHT = and_(DeliveryRow.claimed_until.is_not(None), DeliveryRow.claimed_until > func.now())
_REDELIVER = compile_query(
    update(DeliveryRow)
    .where(DeliveryRow.id == bindparam("id"), DeliveryRow.task_id == bindparam("task_id"))
    .values(
        state=case((_IN_FLIGHT, DeliveryRow.state), else_=literal(PENDING)),
        step=case((_IN_FLIGHT, DeliveryRow.step), else_=literal(0)),
        next_attempt_at=case((_IN_FLIGHT, DeliveryRow.next_attempt_at), else_=func.now()),
    )
    .returning(DeliveryRow.id),
    idempotent=True,
)


class DeliveryStore:
    """The outbox's queries: claim what is due, log each attempt, list, redeliver."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def claim(self, limit: int, lease: float) -> list[Due]:
        """Up to ``limit`` due deliveries, hidden from other claims for ``lease`` seconds."""
        rows = await self._database.rows(_CLAIM, limit=limit, lease=lease)
        return [Due(**row) for row in rows]

    async def seconds_to_next(self) -> float | None:
        """How long until the next pending delivery is due (≤ 0: now); None when none is."""
        value = await self._database.value(_SECONDS_TO_NEXT)
        return None if value is None else float(value)

    async def record(self, delivery: UUID, outcome: Outcome) -> None:
        """Log one attempt and move the delivery on, in one statement."""
        await self._database.value(
            _RECORD,
            id=delivery,
            state=outcome.state,
            delay=outcome.delay,
            started_at=outcome.started_at,
            duration=outcome.duration,
            status_code=outcome.status_code,
            error=outcome.error,
        )

    async def stop_url(self, url: str) -> None:
        """The receiver said 410 Gone: nothing more is sent there that is pending now."""
        await self._database.value(_STOP_URL, url=url)

    async def of_task(self, task_id: UUID) -> list[DeliveryRecord]:
        deliveries = await self._database.rows(_OF_TASK, task_id=task_id)
        attempts: dict[UUID, list[AttemptRecord]] = {}
        for row in await self._database.rows(_ATTEMPTS_OF_TASK, task_id=task_id):
            attempts.setdefault(row.delivery_id, []).append(
                AttemptRecord(*(row[f.name] for f in fields(AttemptRecord)))
            )
        return [DeliveryRecord(**row, log=attempts.get(row.id, [])) for row in deliveries]

    async def redeliver(self, task_id: UUID, delivery: UUID) -> bool:
        """Make a delivery of the task due now, its schedule afresh; False if there is none."""
        return await self._database.row(_REDELIVER, id=delivery, task_id=task_id) is not None
