"""Retention: audio, then whole tasks, removed some days after the task ended.

A purge runs at start and then every hour, in small batches so no statement holds
many rows locked; one instance at a time (an advisory lock per batch). Live tasks
are never touched: every statement checks the task's status itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.lowlevel

from store.tasks import TaskStore
from supervisor.ports import JournalUnavailable

log = logging.getLogger(__name__)

#: How many tasks one statement touches.
BATCH = 100
#: Seconds between purges.
INTERVAL = 3600.0

#: Told how many were removed of what ("audio" or "tasks"): the metrics' hook.
Removed = Callable[[str, int], None]


class Retention:
    """The purge; ``run`` repeats it until cancelled."""

    def __init__(
        self,
        store: TaskStore,
        *,
        audio_days: int | None,
        task_days: int | None,
        batch: int = BATCH,
        removed: Removed = lambda kind, count: None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._store = store
        self._audio_days = audio_days
        self._task_days = task_days
        self._batch = batch
        self._removed = removed
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self._audio_days is not None or self._task_days is not None

    async def purge(self) -> dict[str, int]:
        """One purge, batch after batch until nothing is left: how many of each went."""
        counts = {"audio": 0, "tasks": 0}
        if self._audio_days is not None:
            counts["audio"] = await self._drain("audio", self._audio_days, self._store.purge_audio)
        if self._task_days is not None:
            counts["tasks"] = await self._drain("tasks", self._task_days, self._store.purge_tasks)
        return counts

    async def _drain(
        self, kind: str, days: int, purge: Callable[[int, int], Awaitable[Sequence[object]]]
    ) -> int:
        total = 0
        while True:
            removed = len(await purge(days, self._batch))
            total += removed
            if removed:
                self._removed(kind, removed)
            if removed < self._batch:
                break
            await anyio.lowlevel.checkpoint()  # let requests in between batches
        if total:
            log.info(
                "retention: removed the %s of %d tasks that ended over %d days ago",
                "audio" if kind == "audio" else "rows",
                total,
                days,
            )
        return total

    async def run(self) -> None:
        """Purge now and then every ``INTERVAL`` seconds; an outage only skips a round."""
        while True:
            try:
                await self.purge()
            except JournalUnavailable as error:
                log.warning("retention: database unavailable (%s); next purge later", error)
            await self._sleep(INTERVAL)
