"""The raw baseline: Starlette "hello world" under uvicorn. ``_hello.py PORT h11|httptools``."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return PlainTextResponse("Hello, world!")


async def hello_post(request: Request) -> Response:
    await request.body()
    return PlainTextResponse("Hello, world!")


app = Starlette(routes=[Route("/", hello), Route("/", hello_post, methods=["POST"])])

if __name__ == "__main__":
    port, http = int(sys.argv[1]), sys.argv[2]
    loop = "uvloop" if http == "httptools" else "asyncio"
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        loop=loop,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
