"""Error answers: a 405 names every method of its path, a 401 says why in a few words."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL

from tests.service_helpers import Running, auth, running_service

pytestmark = pytest.mark.anyio


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


# 405: Allow names every method of the path.


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/tasks", {"GET", "HEAD", "POST"}),
        ("DELETE", "/tasks", {"GET", "HEAD", "POST"}),
        ("PATCH", "/tasks/{id}", {"GET", "HEAD", "DELETE"}),
        ("POST", "/tasks/{id}", {"GET", "HEAD", "DELETE"}),
        ("GET", "/tasks/{id}/cancel", {"POST"}),
        ("DELETE", "/tasks/{id}/events", {"GET", "HEAD"}),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    svc: Running, user: uuid.UUID, method: str, path: str, allowed: set[str]
) -> None:
    answer = await svc.client.request(
        method, path.replace("{id}", str(uuid.uuid4())), headers=auth(user)
    )
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed
    assert answer.json()["error"] == "method_not_allowed"
    assert set(answer.json()) == {"error", "detail"}


# A refused token's 401 says why in a few words, never in pyjwt's.


async def test_a_forged_tokens_401_says_the_signature_is_invalid(svc: Running) -> None:
    import time

    import jwt

    claims = {"sub": str(uuid.uuid4()), "exp": int(time.time()) + 600}
    forged = jwt.encode(claims, "another-secret-" * 5, algorithm="HS512")
    answer = await svc.client.get("/tasks", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized", "detail": "the token's signature is invalid"}
