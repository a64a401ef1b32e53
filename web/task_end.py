"""Waiting for a task's end on behalf of a caller who holds its request open.

The task is followed through the same feed an SSE stream reads (``web.feed``): its
actor here, or the cluster's events when another instance runs it, through that
instance's failover too. The wait races the caller's hang-up, the service's
shutdown and a deadline, in one task group: whichever comes first ends the others.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import anyio
from starlette.types import Receive

from supervisor.events import QueuePosition
from supervisor.lifecycle import Status, is_terminal
from web.context import Services
from web.feed import is_terminal_event, open_feed

#: A pause before following again when a feed ended with nothing new (the task's actor
#: was restarting or moving to another instance): an SSE client's reconnect, in-process.
REFOLLOW_SECONDS = 0.2


class Outcome(StrEnum):
    #: The task reached a terminal status (or was deleted: ``status`` None).
    ENDED = "ended"
    #: The caller closed the connection first.
    HUNG_UP = "hung_up"
    #: The deadline passed first; the task goes on.
    WAITED_ENOUGH = "waited_enough"
    #: This instance began to stop; the task goes on (elsewhere, or at the next start).
    STOPPING = "stopping"


@dataclass(frozen=True)
class Waited:
    outcome: Outcome
    status: Status | None = None


async def terminal_status(app: Services, user_id: UUID, task_id: UUID, after: int) -> Status | None:
    """The task's status once terminal, following its events after seq ``after``; None
    when it is deleted meanwhile."""
    while True:
        raw = await app.store.owned(user_id, task_id)
        if raw is None:
            return None
        status = Status(raw)
        if is_terminal(status):
            return status
        feed = await open_feed(app.store, app.door, task_id, after, status=status)
        before = after
        try:
            async with aclosing(feed.events()) as events:
                async for event in events:
                    if isinstance(event, QueuePosition):
                        continue
                    after = event.seq
                    if is_terminal_event(event):
                        return event.status
        finally:
            await feed.aclose()
        if feed.deleted:
            return None
        if after == before:
            await anyio.sleep(REFOLLOW_SECONDS)


async def wait_for_end(
    app: Services, user_id: UUID, task_id: UUID, after: int, receive: Receive, patience: float
) -> Waited:
    """Whichever comes first: the task's end, the caller's hang-up, the service's
    shutdown, or ``patience`` seconds."""
    first: list[Waited] = []
    async with anyio.create_task_group() as group:

        def settle(waited: Waited) -> None:
            if not first:
                first.append(waited)
            group.cancel_scope.cancel()

        async def follow() -> None:
            settle(Waited(Outcome.ENDED, await terminal_status(app, user_id, task_id, after)))

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass  # the body was read whole: nothing else can come
            settle(Waited(Outcome.HUNG_UP))

        async def stopping() -> None:
            await app.draining.wait()
            settle(Waited(Outcome.STOPPING))

        async def deadline() -> None:
            await anyio.sleep(patience)
            settle(Waited(Outcome.WAITED_ENOUGH))

        for child in (follow, listen, stopping, deadline):
            group.start_soon(child)
    return first[0]
