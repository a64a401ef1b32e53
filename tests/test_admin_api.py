"""The operator's API: every user's tasks, the service's state, timelines, retries,
cancels and deletes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import jwt
import numpy as np
import pytest
from sqlalchemy import URL

from tests.conftest import SECRET
from tests.service_helpers import Running, auth, create, read_stream, repeat_wav, running_service
from tests.stages_helpers import wav_of

pytestmark = pytest.mark.anyio

#: Fails at once (silence), so a failed task is quick to have.
SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)
OPERATOR = uuid.uuid4()


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path, admin_users=[OPERATOR]) as running:
        yield running


async def _failed_task(svc: Running, user: uuid.UUID, title: str = "silence") -> str:
    task = (await create(svc.client, user, SILENT, title=title)).json()
    with anyio.fail_after(30):
        await read_stream(svc.client, f"/tasks/{task['id']}/events", auth(user))
    return str(task["id"])


ADMIN_GETS = [
    "/admin/overview",
    "/admin/tasks",
    "/admin/tasks/{id}",
    "/admin/tasks/{id}/audio",
    "/admin/tasks/{id}/events",
]
ADMIN_POSTS = ["/admin/tasks/{id}/retry", "/admin/tasks/{id}/cancel", "/admin/retry"]


async def test_a_learner_gets_404_on_every_admin_route(svc: Running, user: uuid.UUID) -> None:
    task_id = await _failed_task(svc, user)
    for path in ADMIN_GETS:
        answer = await svc.client.get(path.format(id=task_id), headers=auth(user))
        assert answer.status_code == 404, path
        assert answer.json()["error"] == "not_found"
    for path in ADMIN_POSTS:
        answer = await svc.client.post(path.format(id=task_id), headers=auth(user))
        assert answer.status_code == 404, path
    refused = await svc.client.delete(f"/admin/tasks/{task_id}", headers=auth(user))
    assert refused.status_code == 404
    assert (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).status_code == 200
    unauthenticated = await svc.client.get("/admin/tasks")
    assert unauthenticated.status_code == 401


async def test_an_operator_sees_every_users_tasks_with_filters(
    svc: Running, user: uuid.UUID
) -> None:
    other = uuid.uuid4()
    mine, theirs = await _failed_task(svc, user, "a"), await _failed_task(svc, other, "b")
    everything = (await svc.client.get("/admin/tasks", headers=auth(OPERATOR))).json()
    ids = [t["id"] for t in everything["items"]]
    assert ids.index(theirs) < ids.index(mine)  # newest first
    row = everything["items"][ids.index(theirs)]
    assert row["user_id"] == str(other)
    assert row["status"] == "failed"
    assert row["failure_reason"]
    by_user = await svc.client.get(
        "/admin/tasks", params={"user_id": str(other)}, headers=auth(OPERATOR)
    )
    assert [t["id"] for t in by_user.json()["items"]] == [theirs]
    completed = await svc.client.get(
        "/admin/tasks",
        params={"status": "completed", "user_id": str(other)},
        headers=auth(OPERATOR),
    )
    assert completed.json()["items"] == []
    page = await svc.client.get("/admin/tasks", params={"limit": 1}, headers=auth(OPERATOR))
    following = await svc.client.get(
        "/admin/tasks",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=auth(OPERATOR),
    )
    assert following.json()["items"][0]["id"] != page.json()["items"][0]["id"]
    created = everything["items"][ids.index(theirs)]["created_at"]
    after = await svc.client.get(
        "/admin/tasks", params={"created_after": created}, headers=auth(OPERATOR)
    )
    assert theirs not in [t["id"] for t in after.json()["items"]]
    before = await svc.client.get(
        "/admin/tasks", params={"created_before": created}, headers=auth(OPERATOR)
    )
    assert mine in [t["id"] for t in before.json()["items"]]
    assert theirs not in [t["id"] for t in before.json()["items"]]
    bad = await svc.client.get("/admin/tasks", params={"user_id": "x"}, headers=auth(OPERATOR))
    assert bad.status_code == 422


async def test_an_operator_reads_a_tasks_detail_and_timeline(svc: Running, user: uuid.UUID) -> None:
    task_id = await _failed_task(svc, user)
    detail = (await svc.client.get(f"/admin/tasks/{task_id}", headers=auth(OPERATOR))).json()
    assert detail["user_id"] == str(user)
    assert detail["status"] == "failed"
    timeline = (
        await svc.client.get(f"/admin/tasks/{task_id}/events", headers=auth(OPERATOR))
    ).json()["events"]
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    assert timeline[0]["status"] == "created"
    assert timeline[-1]["status"] == "failed"
    missing = await svc.client.get(f"/admin/tasks/{uuid.uuid4()}", headers=auth(OPERATOR))
    assert missing.status_code == 404


async def test_an_operator_plays_another_users_recording_whole_or_a_range(
    svc: Running, user: uuid.UUID
) -> None:
    task_id = await _failed_task(svc, user)
    path = f"/admin/tasks/{task_id}/audio"
    whole = await svc.client.get(path, headers=auth(OPERATOR))
    assert whole.status_code == 200
    assert whole.content == SILENT
    part = await svc.client.get(path, headers={**auth(OPERATOR), "Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == SILENT[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(SILENT)}"
    missing = await svc.client.get(f"/admin/tasks/{uuid.uuid4()}/audio", headers=auth(OPERATOR))
    assert missing.status_code == 404


async def test_an_operator_retries_another_users_failed_task(svc: Running, user: uuid.UUID) -> None:
    task_id = await _failed_task(svc, user)
    answer = await svc.client.post(f"/admin/tasks/{task_id}/retry", headers=auth(OPERATOR))
    assert answer.status_code == 202, answer.text
    assert answer.json()["attempt"] == 2
    with anyio.fail_after(30):
        await read_stream(svc.client, f"/tasks/{task_id}/events", auth(user))
    again = await svc.client.get(f"/tasks/{task_id}", headers=auth(user))
    assert again.json()["attempt"] == 2  # the owner sees the retry


async def test_an_operator_cancels_then_deletes_another_users_live_task(
    svc: Running, user: uuid.UUID, speech_clip: bytes
) -> None:
    task_id = (await create(svc.client, user, repeat_wav(speech_clip, 8))).json()["id"]
    answer = await svc.client.post(f"/admin/tasks/{task_id}/cancel", headers=auth(OPERATOR))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": task_id, "status": "cancelled"}
    seen = (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).json()
    assert (seen["status"], seen["failure_reason"]) == ("cancelled", "cancelled by an operator")
    again = await svc.client.post(f"/admin/tasks/{task_id}/cancel", headers=auth(OPERATOR))
    assert again.status_code == 409
    deleted = await svc.client.delete(f"/admin/tasks/{task_id}", headers=auth(OPERATOR))
    assert deleted.status_code == 204
    assert (await svc.client.get(f"/tasks/{task_id}", headers=auth(user))).status_code == 404
    gone = await svc.client.delete(f"/admin/tasks/{task_id}", headers=auth(OPERATOR))
    assert gone.status_code == 404


async def test_bulk_retry_runs_again_the_failed_tasks_the_filter_matches(
    svc: Running, user: uuid.UUID
) -> None:
    other = uuid.uuid4()
    mine = await _failed_task(svc, user)
    await _failed_task(svc, other)
    answer = await svc.client.post(
        "/admin/retry", json={"user_id": str(user)}, headers=auth(OPERATOR)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"matched": 1, "retried": [mine]}
    bad = await svc.client.post("/admin/retry", json={"user_id": 3}, headers=auth(OPERATOR))
    assert bad.status_code == 422


async def test_the_overview_counts_tasks_and_reports_queue_and_restarts(
    svc: Running, user: uuid.UUID
) -> None:
    await _failed_task(svc, user)
    overview = (await svc.client.get("/admin/overview", headers=auth(OPERATOR))).json()
    assert overview["failed"] >= 1
    assert overview["by_status"]["failed"] == overview["failed"]
    assert set(overview["running"]) == {"started", "preprocessing", "transcribing", "evaluating"}
    assert overview["queue_depth"] >= 0
    assert overview["actor_restarts"] == 0


async def test_an_operator_claim_in_a_token_makes_no_operator(svc: Running) -> None:
    """Anyone holding the shared secret could sign one: only MANAGER_ADMIN_USERS counts."""
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 600, "operator": True}
    token = jwt.encode(claims, SECRET, algorithm="HS512")
    answer = await svc.client.get("/admin/overview", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    claims["sub"] = str(OPERATOR)
    token = jwt.encode(claims, SECRET, algorithm="HS512")
    answer = await svc.client.get("/admin/overview", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


async def test_the_admin_routes_are_in_the_openapi_document(svc: Running) -> None:
    paths = (await svc.client.get("/openapi.json")).json()["paths"]
    for path in [
        "/admin/overview",
        "/admin/tasks",
        "/admin/tasks/{task_id}",
        "/admin/tasks/{task_id}/audio",
        "/admin/tasks/{task_id}/events",
        "/admin/tasks/{task_id}/retry",
        "/admin/tasks/{task_id}/cancel",
        "/admin/retry",
    ]:
        assert path in paths
        for operation in paths[path].values():
            if isinstance(operation, dict) and "responses" in operation:
                assert "404" in operation["responses"]
