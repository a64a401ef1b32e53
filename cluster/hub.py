"""Streams on this instance of tasks run by any instance: one read per notification batch.

The listener hands over each notification (task id and seq); for the tasks somebody
here follows, the hub reads the new events from the journal once, in one query for
all of them, and fans them out. A task nobody here follows costs nothing, and an idle
stream costs no query. After a lost connection (or in polling mode) ``catch_up``
reads whatever every followed task missed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import anyio

from store.cluster import ClusterStore
from supervisor.events import Event
from supervisor.fanout import Fanout
from supervisor.messages import Subscription
from supervisor.ports import JournalUnavailable

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Followed:
    fanout: Fanout
    #: The newest seq published here (at first, the first subscriber's position).
    last: int = 0
    #: The highest seq notified: there is something to read while it is above ``last``.
    #: Never cleared by a read, so a notification that arrives during one is not lost.
    highest: int = -1

    @property
    def behind(self) -> bool:
        return self.highest > self.last


@dataclass
class EventHub:
    """Per-instance fan-out of the cluster's events to this instance's streams."""

    store: ClusterStore
    buffer: int
    sleep: Sleep = anyio.sleep
    _followed: dict[UUID, _Followed] = field(default_factory=dict)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _closed: bool = False

    def __len__(self) -> int:
        return len(self._followed)

    def subscribe(self, task_id: UUID, after: int = 0) -> Subscription:
        """Every event of the task persisted from now on (by any instance); ``after`` is
        the client's position: a task nobody here followed yet is read from there on,
        not from its first event (a retried task's history holds earlier ends)."""
        if self._closed:
            # The service is stopping but still answers: the stream ends at once (the
            # client comes back later) rather than wait for events no one will read.
            ended = Fanout(self.buffer)
            events = ended.add()
            ended.close()
            return Subscription(None, events, ended)
        followed = self._followed.get(task_id)
        if followed is None or followed.fanout.deleted:
            followed = self._followed[task_id] = _Followed(Fanout(self.buffer), last=after)
        return Subscription(None, followed.fanout.add(), followed.fanout)

    def notified(self, task_id: UUID, seq: int) -> None:
        """A notification: event ``seq`` of the task is persisted (called on the loop)."""
        followed = self._followed.get(task_id)
        if followed is None or seq <= followed.last:
            return
        followed.highest = max(followed.highest, seq)
        self._wake.set()

    def deleted(self, task_id: UUID) -> None:
        """The task is gone: its streams end and say so."""
        followed = self._followed.pop(task_id, None)
        if followed is not None:
            followed.fanout.close(deleted=True)

    def close(self) -> None:
        """End every stream (the service stops)."""
        self._closed = True
        for followed in self._followed.values():
            followed.fanout.close()
        self._followed.clear()

    async def run(self) -> None:
        """Read and fan out what the notifications announced, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            self._prune()
            wanted = {
                task_id: _read_after(followed)
                for task_id, followed in self._followed.items()
                if followed.behind
            }
            if wanted:
                try:
                    await self._read(wanted)
                except Exception:  # noqa: BLE001 - the hub must outlive one failed read
                    log.exception("cluster events: a read failed; trying again")
                    await self.sleep(0.5)
                    self._wake.set()

    async def catch_up(self) -> None:
        """Read what every followed task may have missed, and end the streams of
        deleted tasks (after a lost connection, or on each tick when polling).

        ``JournalUnavailable`` when it could not: the caller tries again."""
        self._prune()
        if not self._followed:
            return
        wanted = {task_id: f.last for task_id, f in self._followed.items()}
        for task_id in await self.store.missing(list(wanted)):
            self.deleted(task_id)
            wanted.pop(task_id, None)
        if wanted:
            await self._read(wanted, retry=False)

    async def _read(self, wanted: dict[UUID, int], *, retry: bool = True) -> None:
        outages = 0
        while True:
            try:
                events = await self.store.events_after(wanted)
                break
            except JournalUnavailable:
                if not retry:
                    raise
                outages += 1
                if outages == 1:
                    log.warning("cluster events: the journal is unavailable; retrying")
                await self.sleep(min(0.1 * 2**outages, 2.0))
        # Whatever was notified during the read is still ``behind``: the loop reads it.
        for event in events:
            self._publish(event)

    def _publish(self, event: Event) -> None:
        followed = self._followed.get(event.task_id)
        if followed is None or event.seq <= followed.last:
            return
        followed.last = event.seq
        followed.fanout.publish(event)

    def _prune(self) -> None:
        """Forget the tasks whose every stream here has ended."""
        for task_id, followed in list(self._followed.items()):
            if not followed.fanout.prune():
                del self._followed[task_id]


def _read_after(followed: _Followed) -> int:
    """Read after what was published (at first, the first subscriber's position), never
    from the first seq notified: a notification can be lost with the connection that
    was to hear it (a restart), and the catch-up of the reconnection can fail too."""
    return followed.last
