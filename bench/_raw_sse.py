"""The raw SSE baseline: Starlette + uvicorn (uvloop, httptools), no database.

``GET /stream`` is one stream; ``POST /push`` stamps one event with the time and
puts it on every stream's queue; ``POST /end`` sends a terminal event (streams end).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

queues: set[asyncio.Queue[bytes | None]] = set()
seq = 0


def _frame(status: str) -> bytes:
    global seq
    seq += 1
    data = {
        "seq": seq,
        "type": "status",
        "status": status,
        "created_at": datetime.now(UTC).isoformat(),
    }
    return f"id: {seq}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(request: Request) -> Response:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(256)
    queues.add(queue)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 3000\n\n"
            while (item := await queue.get()) is not None:
                yield item
        finally:
            queues.discard(queue)

    return StreamingResponse(events(), media_type="text/event-stream")


async def push(request: Request) -> Response:
    end = request.query_params.get("end") == "1"
    frame = _frame("completed" if end else "running")
    for queue in list(queues):
        queue.put_nowait(frame)
        if end:
            queue.put_nowait(None)
    return PlainTextResponse(str(len(queues)))


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/stream", stream),
        Route("/push", push, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
