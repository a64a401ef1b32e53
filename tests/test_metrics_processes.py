"""Several ``run.py`` processes sharing one metrics directory: any of them answers with the sum.

The test plays the launcher (the cluster issue's ``MANAGER_PROCESSES``): it sets
``PROMETHEUS_MULTIPROC_DIR`` once for all of them. Each process logs in JSON and has
a database of its own (tests/test_cluster*.py share one); the metrics directory is
what they share.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA, SECRET, _fresh_database, free_port, machine_pg_available
from tests.metrics_helpers import parse, value
from tests.process_helpers import ServiceProcess, clean_env
from web.auth import issue_token


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    if not machine_pg_available():
        pytest.skip("needs the machine's PostgreSQL")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    started = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        url = _fresh_database("machine", tmp_path / name)
        env = clean_env(
            MANAGER_DB_POSTGRES_HOST=str(url.host),
            MANAGER_DB_POSTGRES_PORT=str(url.port),
            MANAGER_DB_POSTGRES_USER="postgres",
            MANAGER_DB_POSTGRES_PASSWORD="unused",
            MANAGER_DB_POSTGRES_NAME=str(url.database),
            MANAGER_MIGRATE_ON_START="false",
            MANAGER_AUTH_JWT_SECRET=SECRET,
            MANAGER_ENGINE_WORKERS="1",
            MANAGER_LOG_FORMAT="json",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        )
        started.append(ServiceProcess(tmp_path / name, free_port(), env))
    yield started
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)


def run_one_task(service: ServiceProcess, user: uuid.UUID) -> str:
    headers = {"Authorization": f"Bearer {issue_token(SECRET, user)}"}
    clip = (DATA / "two_cities_5s.wav").read_bytes()
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        created = client.post("/tasks", files={"file": ("a.wav", clip, "audio/wav")})
        assert created.status_code == 201, created.text
        task_id: str = created.json()["id"]
        with client.stream("GET", f"/tasks/{task_id}/events") as stream:
            last = [line for line in stream.iter_lines() if line.startswith("data: ")][-1]
        assert json.loads(last[6:])["status"] == "completed"
    return task_id


def scrape(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{service.url}/metrics", timeout=10)
    assert response.status_code == 200
    return parse(response.text)


def test_with_two_processes_either_one_answers_with_the_totals(
    processes: list[ServiceProcess], user: uuid.UUID
) -> None:
    for service in processes:
        service.start()
    task_ids = [run_one_task(service, user) for service in processes]

    for service in processes:
        samples = scrape(service)
        assert value(samples, "stm_tasks_created_total") == 2
        assert value(samples, "stm_transitions_total", status="completed") == 2
        assert value(samples, "stm_task_outcomes_total", outcome="completed") == 2
        labels = {"stage": "transcribing", "engine": "embedded"}
        assert value(samples, "stm_stage_duration_seconds_count", **labels) == 2
        post = {"route": "/tasks", "method": "POST", "status": "201"}
        assert value(samples, "stm_http_requests_total", **post) == 2

    first, second = processes
    assert first.terminate() == 0
    # A stopped process's counters stay in the totals.
    assert value(scrape(second), "stm_tasks_created_total") == 2

    lines = [
        json.loads(line)
        for line in first.log.read_text().splitlines()
        if line.startswith("{")  # the banner on stdout is text
    ]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    mine = [line for line in lines if line.get("task_id") == task_ids[0]]
    assert [line["message"] for line in mine][0] == "task created"
    assert mine[-1]["message"] == "task completed"
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's lines too
