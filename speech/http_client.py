"""The HTTP client of a remote engine: one per service, shared by every task."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

#: Connections to one remote service at most; further requests wait their turn here.
MAX_CONNECTIONS = 64


class RemoteClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that queues requests itself once its connections are busy.

    httpcore's pool re-matches every waiting request against every connection each
    time one changes hands: with 1,000 tasks waiting on 100 connections the event loop
    did nothing else for minutes (``bench/open_streams.py``). A semaphore in front of
    the pool keeps that queue empty; waiting on it costs the same for 1 or 10,000.
    """

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, **options: Any) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        super().__init__(limits=limits, **options)
        self._turns = anyio.Semaphore(max_connections)

    async def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        if options.get("stream"):  # its connection stays busy after this returns: no turn
            return await super().send(request, **options)
        async with self._turns:  # held until the body is read and the connection is free
            return await super().send(request, **options)
