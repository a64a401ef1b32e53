"""Pure ASGI middleware that counts the HTTP requests in flight, so that a drain can
wait for them before the listener closes (a closed listener refuses the next client,
where a listening, draining service answers 503)."""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send


class InFlight:
    """Counts the requests being answered; ``idle()`` waits until none is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.count == 0:
            self._idle = anyio.Event()
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def idle(self) -> None:
        """Until no request is in flight (a new one may start right after)."""
        while self.count:
            await self._idle.wait()
