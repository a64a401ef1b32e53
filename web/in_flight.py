"""Pure ASGI middleware that keeps the HTTP requests in flight, so that a drain can
wait for them before the listener closes (a closed listener refuses the next client,
where a listening, draining service answers 503)."""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send


class InFlight:
    """The requests being answered; ``answered()`` waits for those in flight now."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: One event per request in flight, set when it has been answered.
        self._answering: set[anyio.Event] = set()

    def __len__(self) -> int:
        return len(self._answering)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = anyio.Event()
        self._answering.add(done)
        try:
            await self.app(scope, receive, send)
        finally:
            self._answering.discard(done)
            done.set()

    async def answered(self) -> None:
        """Until every request in flight now has been answered. Later ones are not waited
        for: under steady traffic there may never be a moment with none."""
        for done in list(self._answering):
            await done.wait()
