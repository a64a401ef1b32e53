"""The service as a whole: it must not outlive its supervisor, and gateway auth mode."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import URL

from tests.service_helpers import create, read_stream, running_service

pytestmark = pytest.mark.anyio


async def test_the_service_stops_serving_when_its_supervisor_dies(
    service_database_url: URL, tmp_path: Path
) -> None:
    async def crash() -> None:
        raise RuntimeError("the supervisor hit a bug")

    url = ""
    with pytest.raises(BaseExceptionGroup) as raised:  # noqa: PT012 - the crash ends the block
        with anyio.fail_after(30):
            async with running_service(service_database_url, tmp_path) as svc:
                url = svc.service.url
                assert (await svc.client.get("/readyz")).status_code == 200
                group = svc.service.services.supervisor._group
                assert group is not None
                group.start_soon(crash)
                await anyio.sleep_forever()
    assert raised.group_contains(RuntimeError, match="supervisor hit a bug")
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/healthz")


async def test_gateway_mode_trusts_the_gateway_header(
    service_database_url: URL, tmp_path: Path, speech_clip: bytes
) -> None:
    user = uuid.uuid4()
    header = {"X-User-Id": str(user)}
    async with running_service(
        service_database_url, tmp_path, auth_mode="gateway", trusted_networks="127.0.0.0/8"
    ) as svc:
        created = await svc.client.post(
            "/tasks", headers=header, files={"file": ("a.wav", speech_clip, "audio/wav")}
        )
        assert created.status_code == 201
        task_id = created.json()["id"]
        with anyio.fail_after(60):
            events = await read_stream(svc.client, f"/tasks/{task_id}/events", header)
        assert events[-1].data["status"] == "completed"
        missing = await svc.client.get("/tasks")
        assert missing.status_code == 401
        stranger = await svc.client.get(
            f"/tasks/{task_id}", headers={"X-User-Id": str(uuid.uuid4())}
        )
        assert stranger.status_code == 404
        assert (await create(svc.client, user, speech_clip)).status_code == 401  # bearer ignored
