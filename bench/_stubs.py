"""Stand-ins for the three ILPS stage services (contracts as in speech/ilps_remote.py).

One process, one uvicorn (uvloop + httptools) per service, plus a control port:
``POST /close`` holds every preprocessing request at a gate until ``POST /open``.
Delays (seconds) come from STUB_DELAYS, e.g. {"transcribing": 0.2}; ports from STUB_PORTS.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import wav_bytes  # noqa: E402

PORTS: dict[str, int] = json.loads(os.environ["STUB_PORTS"])
DELAYS: dict[str, float] = {"transcribing": 0.2, **json.loads(os.environ.get("STUB_DELAYS", "{}"))}
WAV = wav_bytes(1.0)
gate = asyncio.Event()
gate.set()


async def preprocessing(request: Request) -> Response:
    await request.body()
    await gate.wait()
    if DELAYS.get("preprocessing"):
        await asyncio.sleep(DELAYS["preprocessing"])
    return Response(WAV, media_type="audio/wav")


async def transcribing(request: Request) -> Response:
    await request.body()
    await asyncio.sleep(DELAYS.get("transcribing", 0.0))
    return JSONResponse({"transcription": "h ə l oʊ w ɜ l d"})


async def feedback(request: Request) -> Response:
    await request.body()
    if DELAYS.get("feedback"):
        await asyncio.sleep(DELAYS["feedback"])
    return JSONResponse({"accuracy": 80.0, "mistakes": []})


async def close(request: Request) -> Response:
    global gate
    if gate.is_set():
        gate = asyncio.Event()
    return PlainTextResponse("closed")


async def open_(request: Request) -> Response:
    gate.set()
    return PlainTextResponse("open")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


APPS = {
    "preprocessing": [Route("/", preprocessing, methods=["POST"])],
    "transcribing": [Route("/", transcribing, methods=["POST"])],
    "feedback": [Route("/", feedback, methods=["POST"])],
    "control": [
        Route("/healthz", healthz),
        Route("/close", close, methods=["POST"]),
        Route("/open", open_, methods=["POST"]),
    ],
}


async def main() -> None:
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=routes),
                host="127.0.0.1",
                port=PORTS[name],
                log_level="warning",
                access_log=False,
                http="httptools",
                loop="none",
                backlog=4096,
            )
        )
        for name, routes in APPS.items()
    ]
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
