"""The remote engines' HTTP client: many more requests than connections, all answered."""

from __future__ import annotations

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from speech.http_client import RemoteClient
from tests.ilps_helpers import serve

pytestmark = pytest.mark.anyio


async def test_requests_past_the_connection_limit_wait_their_turn() -> None:
    busy = peak = 0

    async def slow(request: Request) -> JSONResponse:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await anyio.sleep(0.02)
        busy -= 1
        return JSONResponse({"n": int(request.query_params["n"])})

    app = Starlette(routes=[Route("/slow", slow, methods=["POST"])])
    answers: list[int] = []
    async with serve(app) as port:
        async with RemoteClient(base_url=f"http://127.0.0.1:{port}", max_connections=4) as client:

            async def call(n: int) -> None:
                answers.append((await client.post(f"/slow?n={n}")).json()["n"])

            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    for n in range(200):
                        group.start_soon(call, n)
    assert sorted(answers) == list(range(200))
    assert peak <= 4  # never more at once than the client's connections
