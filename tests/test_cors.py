"""MANAGER_CORS_ORIGINS: preflights, credentialed answers, streams; nothing for other origins."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from sqlalchemy import URL

from tests.console_helpers import cookie
from tests.service_helpers import Running, auth, create, iter_sse, running_service
from tests.stages_helpers import wav_of
from web.settings import Settings

pytestmark = pytest.mark.anyio

APP = "https://app.example"
SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path, cors_origins=[APP]) as running:
        yield running


def _preflight(origin: str, method: str = "POST", headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_allows_credentials_and_the_api_headers(
    svc: Running,
) -> None:
    answer = await svc.client.options("/tasks", headers=_preflight(APP))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "last-event-id", "idempotency-key"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "origin" in answer.headers["vary"].lower()


async def test_a_preflight_from_another_origin_gets_no_cors_header(svc: Running) -> None:
    answer = await svc.client.options("/tasks", headers=_preflight("https://evil.example"))
    assert not any(h.startswith("access-control-") for h in answer.headers)


async def test_without_the_setting_no_origin_is_allowed(
    service_database_url: URL, tmp_path: Path
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        answer = await svc.client.options("/tasks", headers=_preflight(APP))
        assert not any(h.startswith("access-control-") for h in answer.headers)


async def test_an_allowed_origin_streams_with_the_bearer_header_and_reads_the_answer(
    svc: Running, user: uuid.UUID
) -> None:
    task = (await create(svc.client, user, SILENT)).json()
    headers = {**auth(user), "Origin": APP}
    with anyio.fail_after(30):
        async with svc.client.stream(
            "GET", f"/tasks/{task['id']}/events", headers=headers
        ) as response:
            assert response.headers["access-control-allow-origin"] == APP
            assert response.headers["access-control-allow-credentials"] == "true"
            events = [e async for e in iter_sse(response)]
    assert events[-1].data["status"] == "failed"  # silence: streamed to its end


async def test_an_allowed_origin_may_write_with_the_cookie(svc: Running, user: uuid.UUID) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    answer = await svc.client.post("/tasks", files=files, headers={**cookie(user), "Origin": APP})
    assert answer.status_code == 201, answer.text
    assert answer.headers["access-control-allow-origin"] == APP
    assert "location" in answer.headers["access-control-expose-headers"].lower()


def test_an_origin_that_is_not_one_is_a_configuration_error() -> None:
    for bad in ("app.example", "https://app.example/path", "ftp://app.example"):
        with pytest.raises(ValueError, match="not an origin"):
            Settings(_env_file=None, cors_origins=bad)
    settings = Settings(_env_file=None, cors_origins=f"{APP}, http://localhost:3000")
    assert settings.cors_origins == [APP, "http://localhost:3000"]
