"""The cluster's statements: membership, claims, handover, cross-instance cancels.

Written as SQL rather than built with SQLAlchemy: they are PostgreSQL's own features
(advisory locks, ``FOR UPDATE SKIP LOCKED``, sequences, ``unnest``) and read more
plainly so. Membership statements run on an instance's own connections
(``cluster.membership``); the rest go through the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from store.database import Database, Row
from store.records import snapshot_of
from store.sql import Query
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status
from supervisor.ports import TaskSnapshot


def _query(sql: str, *names: str, idempotent: bool) -> Query:
    return Query(sql, names, {}, idempotent)


_SNAPSHOT = (
    "t.id, t.status, t.last_seq, t.attempt, t.language, t.reference_text, t.text_id,"
    " t.transcript, t.words, t.phonemes"
)

#: The oldest unowned live tasks, up to ``room``, for ``owner``; the rows other claims
#: hold locked are skipped, so concurrent claims never wait for each other. An owner
#: that is no longer a member (it was presumed dead) fails on the foreign key.
_CLAIM = _query(
    f"""
    WITH picked AS (
        SELECT task_id FROM live_tasks WHERE owner IS NULL
        ORDER BY queued_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE live_tasks l SET owner = $1, generation = nextval('live_task_generations')
        FROM picked WHERE l.task_id = picked.task_id
        RETURNING l.task_id, l.generation, l.cancel_reason
    )
    SELECT c.generation, c.cancel_reason, {_SNAPSHOT}
    FROM claimed c JOIN tasks t ON t.id = c.task_id
    ORDER BY t.created_at
    """,
    "owner",
    "room",
    idempotent=False,
)
_RELEASE = _query(
    "UPDATE live_tasks SET owner = NULL WHERE task_id = $1 AND owner = $2 AND generation = $3",
    "task_id",
    "owner",
    "generation",
    idempotent=True,
)
#: The live tasks that name ``owner`` but that it does not hold (a write naming it
#: landed and its answer was lost: an admission, a claim): back to the queue. Only
#: those queued a while ago, so an admission whose answer is on its way is left alone.
_ORPHANS = _query(
    """
    UPDATE live_tasks SET owner = NULL
    WHERE owner = $1 AND NOT (task_id = ANY($2::uuid[]))
      AND queued_at < now() - make_interval(secs => $3)
    RETURNING task_id
    """,
    "owner",
    "held",
    "older_than",
    idempotent=True,
)
#: Records the cancel on the live row (a trigger tells the owner) and says who owns it.
_REQUEST_CANCEL = _query(
    "UPDATE live_tasks SET cancel_reason = $2 WHERE task_id = $1 RETURNING owner",
    "task_id",
    "reason",
    idempotent=True,
)
_PENDING_CANCELS = _query(
    "SELECT task_id, cancel_reason FROM live_tasks WHERE owner = $1 AND cancel_reason IS NOT NULL",
    "owner",
    idempotent=True,
)
_UNOWNED_POSITION = _query(
    """
    SELECT count(*) FROM live_tasks
    WHERE owner IS NULL AND queued_at <= (
        SELECT queued_at FROM live_tasks WHERE task_id = $1 AND owner IS NULL
    )
    """,
    "task_id",
    idempotent=True,
)
#: Every event after a seq, for a set of tasks at once: one query per instance, however
#: many streams follow those tasks.
_EVENTS_AFTER = _query(
    """
    SELECT e.task_id, e.seq, e.type, e.status, e.payload, e.created_at
    FROM unnest($1::uuid[], $2::int[]) AS w(task_id, after)
    JOIN task_events e ON e.task_id = w.task_id AND e.seq > w.after
    ORDER BY e.task_id, e.seq
    """,
    "task_ids",
    "afters",
    idempotent=True,
)
_MISSING = _query(
    "SELECT w.id FROM unnest($1::uuid[]) AS w(id)"
    " WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = w.id)",
    "task_ids",
    idempotent=True,
)
_MEMBERS_SIGNATURE = _query(
    "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM cluster_instances",
    idempotent=True,
)


@dataclass(frozen=True)
class Claimed:
    """A task this instance has just claimed, as stored."""

    snapshot: TaskSnapshot
    generation: int
    #: A cancel asked for while it was owned elsewhere (or by nobody).
    cancel_reason: str | None


@dataclass(frozen=True)
class CancelRequest:
    """Whether the task was live, and who owns it (None: nobody, for now)."""

    live: bool
    owner: UUID | None


class ClusterStore:
    """The pool's side of the cluster: claims, releases, cancels, cross-instance reads."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def claim(self, owner: UUID, room: int) -> list[Claimed]:
        rows = await self._database.rows(_CLAIM, owner=owner, room=room)
        return [Claimed(snapshot_of(row), row.generation, row.cancel_reason) for row in rows]

    async def release(self, task_id: UUID, owner: UUID, generation: int) -> None:
        """Leave a live task unowned for the next claim (nothing if it moved on)."""
        await self._database.value(_RELEASE, task_id=task_id, owner=owner, generation=generation)

    async def release_orphans(self, owner: UUID, held: list[UUID], older_than: float) -> int:
        """Leave unowned the live tasks naming ``owner`` that it does not hold; how many."""
        rows = await self._database.rows(_ORPHANS, owner=owner, held=held, older_than=older_than)
        return len(rows)

    async def request_cancel(self, task_id: UUID, reason: str) -> CancelRequest:
        row = await self._database.row(_REQUEST_CANCEL, task_id=task_id, reason=reason)
        return CancelRequest(False, None) if row is None else CancelRequest(True, row.owner)

    async def pending_cancels(self, owner: UUID) -> list[tuple[UUID, str]]:
        rows = await self._database.rows(_PENDING_CANCELS, owner=owner)
        return [(row.task_id, row.cancel_reason) for row in rows]

    async def unowned_position(self, task_id: UUID) -> int | None:
        """The place of an unowned live task in the cluster's queue (1 = next claimed)."""
        count: int = await self._database.value(_UNOWNED_POSITION, task_id=task_id)
        return count or None

    async def members_signature(self) -> str:
        """Who the members are, as one string: it changes when they do."""
        signature: str = await self._database.value(_MEMBERS_SIGNATURE)
        return signature

    async def events_after(self, afters: dict[UUID, int]) -> list[Event]:
        ids = list(afters)
        rows = await self._database.rows(
            _EVENTS_AFTER, task_ids=ids, afters=[afters[i] for i in ids]
        )
        return [_event(row) for row in rows]

    async def missing(self, task_ids: list[UUID]) -> list[UUID]:
        """Which of ``task_ids`` no longer exist (deleted)."""
        return [row.id for row in await self._database.rows(_MISSING, task_ids=task_ids)]


def _event(row: Row) -> Event:
    return Event(
        row.task_id, row.seq, EventType(row.type), Status(row.status), row.payload, row.created_at
    )
