"""The console's session: a token traded for an HttpOnly cookie, CSRF-guarded writes, logout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import URL

from tests.conftest import SECRET
from tests.console_helpers import cookie, from_page
from tests.service_helpers import Running, running_service
from tests.stages_helpers import wav_of
from web.auth import issue_token

pytestmark = pytest.mark.anyio

SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


def _set_cookie(response_headers: list[str]) -> str:
    (found,) = [h for h in response_headers if h.startswith("stm_session=")]
    return found


async def test_signing_in_sets_an_httponly_strict_cookie_that_expires_with_the_token(
    svc: Running, user: uuid.UUID
) -> None:
    token = issue_token(SECRET, user, days=2)
    answer = await svc.client.post(
        "/session", json={"token": token}, headers={"Origin": svc.service.url}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == str(user)
    assert answer.json()["operator"] is False
    header = _set_cookie(answer.headers.get_list("set-cookie"))
    parts = {p.strip().split("=")[0].lower(): p.strip() for p in header.split(";")}
    assert "httponly" in parts
    assert parts["samesite"].lower() == "samesite=strict"
    assert "secure" not in parts  # plain HTTP here: a Secure cookie would never come back
    max_age = int(parts["max-age"].split("=")[1])
    assert 2 * 86400 - 60 <= max_age <= 2 * 86400
    assert parts["path"] == "Path=/"


async def test_a_request_behind_https_gets_a_secure_cookie(svc: Running, user: uuid.UUID) -> None:
    # The proxy in front says the browser came over HTTPS.
    answer = await svc.client.post(
        "/session",
        json={"token": issue_token(SECRET, user)},
        headers={
            "Origin": "https://tasks.example",
            "X-Forwarded-Proto": "https",
            "Host": "tasks.example",
        },
    )
    assert answer.status_code == 200, answer.text
    assert "secure" in _set_cookie(answer.headers.get_list("set-cookie")).lower()


async def test_the_cookie_authenticates_reads_streams_and_writes_from_the_page(
    svc: Running, user: uuid.UUID
) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    created = await svc.client.post("/tasks", files=files, headers=from_page(svc.service.url, user))
    assert created.status_code == 201, created.text
    listed = await svc.client.get("/tasks", headers=cookie(user))
    assert [t["id"] for t in listed.json()["items"]] == [created.json()["id"]]
    who = await svc.client.get("/session", headers=cookie(user))
    assert who.json()["user_id"] == str(user)


async def test_a_bad_token_is_not_traded_for_a_cookie(svc: Running) -> None:
    answer = await svc.client.post(
        "/session", json={"token": "not-a-token"}, headers={"Origin": svc.service.url}
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert "set-cookie" not in answer.headers


async def test_a_sign_in_body_that_is_not_a_token_is_422(svc: Running) -> None:
    for body in (b"", b"[1]", b'{"token": 3}', b"\xff"):
        answer = await svc.client.post(
            "/session", content=body, headers={"Origin": svc.service.url}
        )
        assert answer.status_code == 422, body
        assert set(answer.json()) == {"error", "detail"}


async def test_an_expired_token_in_the_cookie_is_401(svc: Running, user: uuid.UUID) -> None:
    expired = issue_token(SECRET, user, days=-1)
    answer = await svc.client.get("/tasks", headers=cookie(user, expired))
    assert answer.status_code == 401
    assert answer.json()["detail"] == "the token has expired"


async def test_a_cookie_write_from_another_origin_is_refused_and_writes_nothing(
    svc: Running, user: uuid.UUID
) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    for forged in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {},  # no word from the browser at all
    ):
        answer = await svc.client.post("/tasks", files=files, headers={**cookie(user), **forged})
        assert answer.status_code == 403, forged
        assert answer.json()["error"] == "forbidden"
    listed = await svc.client.get("/tasks", headers=cookie(user))
    assert listed.json()["items"] == []


async def test_signing_in_from_another_origin_is_refused(svc: Running, user: uuid.UUID) -> None:
    answer = await svc.client.post(
        "/session",
        json={"token": issue_token(SECRET, user)},
        headers={"Origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


async def test_a_bearer_write_needs_no_origin(svc: Running, user: uuid.UUID) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    headers = {"Authorization": f"Bearer {issue_token(SECRET, user)}", "Origin": "http://x.example"}
    assert (await svc.client.post("/tasks", files=files, headers=headers)).status_code == 201


async def test_signing_out_clears_the_cookie(svc: Running, user: uuid.UUID) -> None:
    answer = await svc.client.delete("/session", headers=from_page(svc.service.url, user))
    assert answer.status_code == 204
    header = _set_cookie(answer.headers.get_list("set-cookie"))
    assert 'stm_session=""' in header or "stm_session=;" in header
    assert "max-age=0" in header.lower()


async def test_gateway_mode_takes_the_gateways_identity_and_refuses_sign_in(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(
        service_database_url, tmp_path, auth_mode="gateway", trusted_networks="127.0.0.0/8"
    ) as svc:
        who = await svc.client.get("/session", headers={"X-User-Id": str(user)})
        assert who.json() == {
            "user_id": str(user),
            "operator": False,
            "auth_mode": "gateway",
            "expires_at": None,
        }
        refused = await svc.client.post(
            "/session",
            json={"token": issue_token(SECRET, user)},
            headers={"Origin": svc.service.url},
        )
        assert refused.status_code == 409


def test_the_sign_in_link_carries_the_token_in_the_fragment() -> None:
    from web.console.links import sign_in_link

    assert sign_in_link("http://127.0.0.1:8064", "abc") == "http://127.0.0.1:8064/#token=abc"


async def test_the_session_routes_are_in_the_openapi_document(
    svc: Running, user: uuid.UUID
) -> None:
    paths = (await svc.client.get("/openapi.json")).json()["paths"]
    assert set(paths["/session"]) == {"post", "get", "delete"}
    who = await svc.client.get("/session", headers=cookie(user))
    schema = (await svc.client.get("/openapi.json")).json()["components"]["schemas"]["SessionOut"]
    assert set(who.json()) == set(schema["properties"])


async def test_in_gateway_mode_a_browsers_cross_site_write_is_refused_and_an_apps_passes(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    gateway = {"X-User-Id": str(user)}
    async with running_service(
        service_database_url, tmp_path, auth_mode="gateway", trusted_networks="127.0.0.0/8"
    ) as svc:
        for forged in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            answer = await svc.client.post("/tasks", files=files, headers={**gateway, **forged})
            assert answer.status_code == 403, forged
        app = await svc.client.post("/tasks", files=files, headers=gateway)  # no browser word
        assert app.status_code == 201
        listed = await svc.client.get("/tasks", headers=gateway)
        assert [t["id"] for t in listed.json()["items"]] == [app.json()["id"]]


async def test_a_page_behind_a_proxy_that_rewrites_host_may_still_write(
    svc: Running, user: uuid.UUID
) -> None:
    files = {"file": ("silent.wav", SILENT, "audio/wav")}
    behind = {**cookie(user), "Origin": "https://tasks.example", "Host": "internal:8064"}
    for proof in ({"Sec-Fetch-Site": "same-origin"}, {"X-Forwarded-Host": "tasks.example"}):
        answer = await svc.client.post("/tasks", files=files, headers={**behind, **proof})
        assert answer.status_code == 201, proof
