"""The API's rules: who may see what, what is refused, and how lists page."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypedDict

import anyio
import httpx
import numpy as np
import pytest
from sqlalchemy import URL

from tests.conftest import SECRET
from tests.service_helpers import Running, auth, create, read_stream, running_service
from tests.stages_helpers import wav_of


class FormFields(TypedDict, total=False):
    """Text fields of an upload form, as ``create`` passes them."""

    title: str
    text_id: str
    reference_text: str


pytestmark = pytest.mark.anyio


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> Running:  # type: ignore[misc]
    async with running_service(service_database_url, tmp_path) as running:
        yield running


async def _count_tasks(svc: Running, user: uuid.UUID) -> int:
    page = await svc.client.get("/tasks?limit=100", headers=auth(user))
    return len(page.json()["items"])


async def test_another_users_task_is_404_on_every_route(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    task = (await create(svc.client, user, speech_clip)).json()
    stranger = auth(uuid.uuid4())
    base = f"/tasks/{task['id']}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/events"),
        ("GET", f"{base}/audio"),
        ("POST", f"{base}/cancel"),
        ("POST", f"{base}/retry"),
        ("DELETE", base),
    ]:
        answer = await svc.client.request(method, path, headers=stranger)
        assert answer.status_code == 404, (method, path)
        assert answer.json() == {"error": "not_found", "detail": "Task not found."}
    assert (await svc.client.get(base, headers=auth(user))).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_no_or_bad_token_is_401(svc: Running, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/tasks"), ("POST", "/tasks"), ("GET", f"/tasks/{uuid.uuid4()}")]:
        answer = await svc.client.request(method, path, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"] == "unauthorized"


async def test_tokens_that_must_not_pass(svc: Running) -> None:
    import time

    import jwt

    now = int(time.time())
    user = str(uuid.uuid4())
    bad = [
        jwt.encode({"sub": user, "exp": now - 10}, SECRET, algorithm="HS512"),  # expired
        jwt.encode({"sub": user, "exp": now + 60}, "another-secret" * 5, algorithm="HS512"),
        jwt.encode({"sub": "not-a-uuid", "exp": now + 60}, SECRET, algorithm="HS512"),
        jwt.encode({"exp": now + 60}, SECRET, algorithm="HS512"),  # no sub
        jwt.encode({"sub": user}, SECRET, algorithm="HS512"),  # no exp
        jwt.encode({"sub": user, "exp": now + 60, "nbf": now + 3600}, SECRET, algorithm="HS512"),
        jwt.encode({"sub": user, "exp": now + 60}, "", algorithm="none"),
    ]
    for token in bad:
        answer = await svc.client.get("/tasks", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token


async def test_random_bytes_are_415_and_nothing_is_written(svc: Running, user: uuid.UUID) -> None:
    import os

    answer = await create(
        svc.client,
        user,
        os.urandom(4096),
        filename="x.bin",
        content_type="application/octet-stream",
    )
    assert answer.status_code == 415
    assert answer.json()["error"] == "unsupported_media_type"
    text = await create(
        svc.client, user, b"hello, this is text" * 50, filename="a.txt", content_type="text/plain"
    )
    assert text.status_code == 415
    assert await _count_tasks(svc, user) == 0


async def test_oversized_upload_is_413_and_nothing_is_written(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    big = speech_clip + b"\0" * (30 * 1024 * 1024)
    answer = await create(svc.client, user, big)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"

    async def chunked() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit is enforced while streaming
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        yield b"Content-Type: audio/wav\r\n\r\n" + speech_clip
        for _ in range(30):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = await svc.client.post(
        "/tasks",
        content=chunked(),
        headers={**auth(user), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert streamed.status_code == 413
    assert await _count_tasks(svc, user) == 0


async def test_missing_file_and_bad_fields_are_422(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    no_file = await svc.client.post(
        "/tasks", headers=auth(user), data={"title": "x"}, files={"other": ("a", b"x")}
    )
    assert no_file.status_code == 422
    not_multipart = await svc.client.post("/tasks", headers=auth(user), json={"a": 1})
    assert not_multipart.status_code == 422
    empty = await create(svc.client, user, b"")
    assert empty.status_code == 422
    bad: tuple[FormFields, ...] = (
        {"title": "t" * 51},
        {"text_id": "nope"},
        {"reference_text": "a" * 10_001},
    )
    for fields in bad:
        answer = await create(svc.client, user, speech_clip, **fields)
        assert answer.status_code == 422, fields
        assert answer.json()["error"] == "invalid"
    assert await _count_tasks(svc, user) == 0


async def test_idempotency_key_returns_the_same_task(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    key = {"Idempotency-Key": "upload-1"}
    first = await create(svc.client, user, speech_clip, headers=key)
    second = await create(svc.client, user, speech_clip, headers=key)
    other_user = await create(svc.client, uuid.uuid4(), speech_clip, headers=key)
    assert (first.status_code, second.status_code, other_user.status_code) == (201, 200, 201)
    assert first.json()["id"] == second.json()["id"] != other_user.json()["id"]


async def test_listing_pages_newest_first_with_filters(svc: Running, user: uuid.UUID) -> None:
    # Silent recordings fail at once: the listing is under test, not the recogniser.
    silent = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)
    ids = []
    for n in range(5):
        ids.append((await create(svc.client, user, silent, title=f"t{n}")).json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await svc.client.get("/tasks", params=params, headers=auth(user))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    first = (await svc.client.get(f"/tasks/{ids[0]}", headers=auth(user))).json()
    after = await svc.client.get(
        "/tasks", params={"created_after": first["created_at"]}, headers=auth(user)
    )
    assert [i["id"] for i in after.json()["items"]] == list(reversed(ids[1:]))
    with anyio.fail_after(120):
        for task_id in ids:
            await read_stream(svc.client, f"/tasks/{task_id}/events", auth(user))
    done = await svc.client.get(
        "/tasks", params=[("status", "completed"), ("status", "failed")], headers=auth(user)
    )
    assert len(done.json()["items"]) == 5
    for query in ({"limit": "0"}, {"limit": "101"}, {"cursor": "garbage"}, {"status": "bogus"}):
        answer = await svc.client.get("/tasks", params=query, headers=auth(user))
        assert answer.status_code == 422, query


async def test_audio_download_and_delete(svc: Running, user: uuid.UUID, speech_clip: bytes) -> None:
    task = (await create(svc.client, user, speech_clip, filename="../../etc/passwd.wav")).json()
    path = f"/tasks/{task['id']}"
    audio = await svc.client.get(f"{path}/audio", headers=auth(user))
    assert audio.status_code == 200
    assert audio.content == speech_clip
    assert audio.headers["content-type"].startswith("audio/wav")
    assert "passwd.wav" in audio.headers["content-disposition"]
    assert "/" not in audio.headers["content-disposition"]
    deleted = await svc.client.delete(path, headers=auth(user))
    assert deleted.status_code == 204
    assert (await svc.client.get(path, headers=auth(user))).status_code == 404
    assert (await svc.client.delete(path, headers=auth(user))).status_code == 404


async def test_health_readiness_and_openapi(svc: Running) -> None:
    assert (await svc.client.get("/healthz")).json() == {"status": "alive"}
    ready = await svc.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    spec = (await svc.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    for path in [
        "/tasks",
        "/tasks/{task_id}",
        "/tasks/{task_id}/events",
        "/tasks/{task_id}/audio",
        "/tasks/{task_id}/cancel",
        "/tasks/{task_id}/retry",
        "/healthz",
        "/readyz",
    ]:
        assert path in spec["paths"], path
    assert {"TaskOut", "TaskListOut", "ErrorOut", "EventOut"} <= set(spec["components"]["schemas"])
    unknown = await svc.client.get("/nowhere")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"


async def test_draining_service_refuses_new_tasks(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    svc.service.services.draining.set()
    answer = await create(svc.client, user, speech_clip)
    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    assert (await svc.client.get("/readyz")).status_code == 503
    assert await _count_tasks(svc, user) == 0
    assert isinstance(svc.client, httpx.AsyncClient)
