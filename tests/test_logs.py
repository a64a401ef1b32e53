"""Lifecycle log lines of a real service, formatted as the JSON log format writes them."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import URL

from ops.logs import USER_ID, JsonFormatter, TextFormatter, install_context
from tests.conftest import free_port
from tests.service_helpers import auth, create, read_stream, repeat_wav, running_service

pytestmark = pytest.mark.anyio


def lines_of(caplog: pytest.LogCaptureFixture, task_id: str) -> list[dict[str, Any]]:
    """The task's lifecycle lines, each as the JSON formatter writes it (one object a line)."""
    formatter = JsonFormatter()
    lines = []
    for record in caplog.records:
        if record.name == "ops.lifecycle":
            text = formatter.format(record)
            assert "\n" not in text
            line = json.loads(text)
            if line.get("task_id") == task_id:
                lines.append(line)
    return lines


async def test_a_tasks_lifecycle_is_one_json_line_per_fact_with_its_id(
    service_database_url: URL,
    tmp_path: Path,
    user: uuid.UUID,
    speech_clip: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ops.lifecycle")
    async with running_service(service_database_url, tmp_path) as svc:
        headers = {"X-Request-ID": "upload-1"}
        text = "It was the best of times"
        created = await create(svc.client, user, speech_clip, headers=headers, reference_text=text)
        task_id = created.json()["id"]
        with anyio.fail_after(60):
            await read_stream(svc.client, f"/tasks/{task_id}/events", auth(user))
        gone = await svc.client.delete(
            f"/tasks/{task_id}", headers={**auth(user), "X-Request-ID": "delete-1"}
        )
        assert gone.status_code == 204

    lines = lines_of(caplog, task_id)
    assert [line["message"] for line in lines] == [
        "task created",
        "status created -> queued",
        "status queued -> started",
        "status started -> preprocessing",
        "status preprocessing -> transcribing",
        "status transcribing -> evaluating",
        "task completed",
        "task deleted",
    ]
    first, *changes, completed, deleted = lines
    assert first["user_id"] == str(user)
    assert first["request_id"] == "upload-1" == created.headers["x-request-id"]
    assert (first["attempt"], first["status"]) == (1, "created")
    assert deleted["request_id"] == "delete-1"
    assert deleted["user_id"] == str(user)
    for line in lines:
        assert line["level"] == "info"
        assert line["logger"] == "ops.lifecycle"
        datetime.fromisoformat(line["time"])
    for line in [*changes, completed]:
        assert line["attempt"] == 1
        assert line["seconds"] >= 0  # how long the task was in the status it left
        assert line["message"].endswith(line["status"]) or line["status"] == "completed"
        assert "request_id" not in line  # the actor's lines belong to the task, not a request
    assert completed["previous"] == "evaluating"


async def test_retry_failure_cancel_and_rerun_lines_say_what_happened(
    service_database_url: URL,
    tmp_path: Path,
    user: uuid.UUID,
    speech_clip: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ops.lifecycle")
    refused = {"service_transcribing_host": "127.0.0.1", "service_transcribing_port": free_port()}
    async with running_service(
        service_database_url, tmp_path, speech_overrides=refused, stage_attempts=2
    ) as svc:
        doomed = (await create(svc.client, user, speech_clip)).json()["id"]
        with anyio.fail_after(60):
            await read_stream(svc.client, f"/tasks/{doomed}/events", auth(user))
        long = (await create(svc.client, user, repeat_wav(speech_clip, 6))).json()["id"]
        cancel = await svc.client.post(f"/tasks/{long}/cancel", headers=auth(user))
        assert cancel.status_code == 202
        retry = await svc.client.post(f"/tasks/{long}/retry", headers=auth(user))
        assert retry.status_code == 202
        with anyio.fail_after(60):  # to the end; 204 when the attempt has already ended
            path = f"/tasks/{long}/events?last_event_id=99"
            async with svc.client.stream("GET", path, headers=auth(user)) as response:
                assert response.status_code in (200, 204)
                await response.aread()

    failed = lines_of(caplog, doomed)
    retry_line = next(line for line in failed if line["message"].startswith("retry scheduled"))
    assert retry_line["stage"] == "transcribing"
    assert retry_line["attempt"] == 1
    assert retry_line["delay"] >= 0
    assert retry_line["status"] == "transcribing"
    last = failed[-1]
    assert last["message"].startswith("task failed: ")
    assert last["reason"] in last["message"]
    assert "gave up after 2 attempts" in last["reason"]
    assert (last["status"], last["failure"], last["previous"]) == (
        "failed",
        "retries_exhausted",
        "transcribing",
    )

    rerun = [line["message"] for line in lines_of(caplog, long)]
    assert "task cancelled: cancelled by the user" in rerun
    assert rerun.index("task cancelled: cancelled by the user") < rerun.index("task retried")
    again = [line for line in lines_of(caplog, long) if line.get("attempt") == 2]
    assert again[0]["message"] == "task retried"
    assert again[-1]["message"].startswith("task failed")  # the refused recogniser again


def _record(message: str, **extra: Any) -> logging.LogRecord:
    install_context()
    return logging.getLogger("ops.lifecycle").makeRecord(
        "ops.lifecycle", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


def test_the_text_format_is_todays_line_with_the_context_at_its_end() -> None:
    task, user = uuid.uuid4(), uuid.uuid4()
    token = USER_ID.set(user)
    try:
        record = _record("task created", task_id=task, attempt=1)
    finally:
        USER_ID.reset(token)
    text = TextFormatter().format(record)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO ops.lifecycle: task created "
        rf"task_id={task} user_id={user} attempt=1",
        text,
    )
    assert TextFormatter().format(_record("plain")).endswith("INFO ops.lifecycle: plain")


def test_a_json_line_with_an_exception_stays_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info()
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["level"] == "error"
    assert "ValueError: bad\nthing" in line["exception"]
