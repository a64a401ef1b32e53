"""The door's way to tasks run by other instances: follow them, cancel them.

A cancel is recorded on the task's live row, where its owner hears of it (a
notification, or its next look when polling) and where a new owner finds it after a
failover; the answer is the task's next terminal event, seen on this instance's hub.
"""

from __future__ import annotations

from uuid import UUID

import anyio

from cluster.hub import EventHub
from store.cluster import ClusterStore
from supervisor.claims import Claims
from supervisor.door import OfflineCancel
from supervisor.events import EventType, QueuePosition
from supervisor.lifecycle import Status, is_terminal
from supervisor.messages import CancelOutcome, Subscription
from supervisor.ports import Journal, JournalUnavailable

#: How long a cancel waits for another instance to carry it out before answering 503
#: (the request stays recorded and is still carried out): a failover's worth and more.
CANCEL_PATIENCE = 30.0


class RemoteTasks:
    """Implements ``supervisor.door.Elsewhere`` over the cluster."""

    def __init__(
        self,
        hub: EventHub,
        store: ClusterStore,
        claims: Claims,
        journal: Journal,
        *,
        patience: float = CANCEL_PATIENCE,
    ) -> None:
        self._hub = hub
        self._store = store
        self._claims = claims
        self._journal = journal
        self._patience = patience

    def subscribe(self, task_id: UUID, after: int = 0) -> Subscription:
        return self._hub.subscribe(task_id, after)

    async def cancel(self, task_id: UUID, reason: str, offline: OfflineCancel) -> CancelOutcome:
        """Cancel a task that no actor here runs; MOVED when it turns out to be ours."""
        try:
            snapshot = await self._journal.load(task_id)
        except JournalUnavailable:
            return CancelOutcome.UNAVAILABLE
        # From where the task is now: a retried task's history holds earlier ends, which
        # are not the answer. Subscribed before the request is recorded, so that the
        # end it brings about cannot slip by (an end before it: the request says so).
        now = snapshot.seq if snapshot is not None else 0
        live = self._hub.subscribe(task_id, now)
        try:
            try:
                request = await self._store.request_cancel(task_id, reason)
            except JournalUnavailable:
                return CancelOutcome.UNAVAILABLE
            if not request.live:
                return CancelOutcome.ENDED
            if request.owner == self._claims.instance_id:
                return CancelOutcome.MOVED
            if request.owner is None:
                outcome = await offline(task_id, reason)  # the door's: nobody runs it
                if outcome is not CancelOutcome.ENDED:
                    return outcome
                # Claimed meanwhile (its new owner finds the request) or ended.
            with anyio.move_on_after(self._patience):
                async with live.events as events:
                    async for event in events:
                        if isinstance(event, QueuePosition) or event.seq <= now:
                            continue
                        if event.type is EventType.STATUS and is_terminal(event.status):
                            return _answer(event.status)
            return await self._as_stored(task_id)
        finally:
            await live.events.aclose()

    async def _as_stored(self, task_id: UUID) -> CancelOutcome:
        """No terminal event came in time (or the task was deleted): what is stored."""
        try:
            snapshot = await self._journal.load(task_id)
        except JournalUnavailable:
            return CancelOutcome.UNAVAILABLE
        if snapshot is None:
            return CancelOutcome.ENDED
        if is_terminal(snapshot.status):
            return _answer(snapshot.status)
        return CancelOutcome.UNAVAILABLE


def _answer(status: Status) -> CancelOutcome:
    return CancelOutcome.CANCELLED if status is Status.CANCELLED else CancelOutcome.ENDED
