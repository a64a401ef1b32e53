"""``GET /metrics`` on a real service: what a task moves, its failure classes, the token."""

from __future__ import annotations

import io
import uuid
import wave
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from tests.conftest import free_port
from tests.metrics_helpers import moved, parse, scrape
from tests.service_helpers import auth, create, read_stream, running_service

pytestmark = pytest.mark.anyio

H = "stm_http_requests_total"


def silent_wav(seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16_000)
        target.writeframes(b"\0\0" * int(16_000 * seconds))
    return out.getvalue()


async def test_a_completed_task_moves_its_counters_and_histograms_by_one(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        before = await scrape(svc.client)
        text = "It was the best of times, it was the worst of times"
        created = await create(svc.client, user, speech_clip, reference_text=text)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        with anyio.fail_after(60):
            events = await read_stream(svc.client, f"/tasks/{task_id}/events", auth(user))
        assert events[-1].data["status"] == "completed"
        response = await svc.client.get("/metrics")
        after = parse(response.text)

    assert moved(before, after, "stm_tasks_created_total") == 1
    for status in (
        "created", "queued", "started", "preprocessing", "transcribing", "evaluating", "completed"
    ):  # fmt: skip
        assert moved(before, after, "stm_transitions_total", status=status) == 1, status
    assert moved(before, after, "stm_task_outcomes_total", outcome="completed") == 1
    assert moved(before, after, "stm_task_outcomes_total", outcome="failed") == 0
    for stage in ("preprocessing", "transcribing", "evaluating"):
        count = "stm_stage_duration_seconds_count"
        assert moved(before, after, count, stage=stage, engine="embedded") == 1, stage
        top = "stm_stage_duration_seconds_bucket"
        assert moved(before, after, top, stage=stage, engine="embedded", le="3600.0") == 1
        assert moved(before, after, top, stage=stage, engine="embedded", le="+Inf") == 1
    assert moved(before, after, "stm_queue_wait_seconds_count") == 1
    assert moved(before, after, "stm_stage_retries_total", stage="transcribing") == 0
    assert moved(before, after, H, route="/tasks", method="POST", status="201") == 1
    assert moved(before, after, H, route="/tasks/{task_id}/events", method="GET", status="200") == 1
    duration = "stm_http_request_duration_seconds_count"
    assert moved(before, after, duration, route="/tasks", method="POST") == 1
    assert moved(before, after, H, route="/metrics", method="GET", status="200") == 1
    # No label anywhere holds a task or a user id.
    exposed = response.text
    assert task_id not in exposed
    assert str(user) not in exposed
    for name in ("stm_queue_depth", "stm_actors_live", "stm_sse_streams_open",
                 "stm_db_pool_connections_in_use", "stm_engine_workers_busy",
                 "stm_db_pool_waits_total", "stm_journal_outages_total",
                 "stm_actor_restarts_total", "stm_recoveries_total",
                 "stm_sse_subscribers_dropped_total"):  # fmt: skip
        assert any(key[0] == name for key in after), name


async def test_failures_are_counted_by_class_and_stage_never_by_their_reason(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    # A transcribing service that refuses every connection: one retry, then
    # "retries_exhausted"; a silent recording is a permanent failure at once.
    refused = {"service_transcribing_host": "127.0.0.1", "service_transcribing_port": free_port()}
    async with running_service(
        service_database_url, tmp_path, speech_overrides=refused, stage_attempts=2
    ) as svc:
        before = await scrape(svc.client)
        doomed = (await create(svc.client, user, speech_clip)).json()["id"]
        silent = (await create(svc.client, user, silent_wav())).json()["id"]
        with anyio.fail_after(60):
            events = await read_stream(svc.client, f"/tasks/{doomed}/events", auth(user))
            quiet = await read_stream(svc.client, f"/tasks/{silent}/events", auth(user))
        response = await svc.client.get("/metrics")
        after = parse(response.text)

    assert [e.event for e in events].count("retry") == 1
    assert events[-1].data["status"] == quiet[-1].data["status"] == "failed"
    failures = "stm_task_failures_total"
    exhausted = {"stage": "transcribing", "class": "retries_exhausted"}
    assert moved(before, after, "stm_stage_retries_total", stage="transcribing") == 1
    assert moved(before, after, failures, **exhausted) == 1
    assert moved(before, after, failures, stage="preprocessing", **{"class": "permanent"}) == 1
    assert moved(before, after, "stm_task_outcomes_total", outcome="failed") == 2
    assert moved(before, after, "stm_transitions_total", status="failed") == 2
    # The decode succeeded once, the recogniser never: no transcribing duration.
    count = "stm_stage_duration_seconds_count"
    assert moved(before, after, count, stage="preprocessing", engine="embedded") == 1
    assert moved(before, after, count, stage="transcribing", engine="ilps") == 0
    for reason in (events[-1].data["payload"]["reason"], quiet[-1].data["payload"]["reason"]):
        assert reason not in response.text  # classes, never the text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic metrics-secret"}, 401),
        ({"Authorization": "Bearer metrics-secret"}, 200),
    ],
)
async def test_a_metrics_token_protects_the_endpoint(
    service_database_url: URL, tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async with running_service(
        service_database_url, tmp_path, metrics_token="metrics-secret"
    ) as svc:
        response = await svc.client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json() == {
            "error": "unauthorized",
            "detail": "the metrics token is required",
        }
        assert "stm_" not in response.text
    else:
        assert ("stm_tasks_created_total", ()) in parse(response.text)
