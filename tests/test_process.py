"""``python run.py`` as a user starts it: zero configuration, restarts, crashes, bad settings."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import DATA, free_port
from tests.process_helpers import ROOT, ServiceProcess, clean_env, stop_leftovers
from tests.service_helpers import repeat_wav


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(tmp_path, free_port(), clean_env())
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)
    stop_leftovers(tmp_path)


def sse(client: httpx.Client, path: str, last: int = 0) -> Iterator[dict[str, object]]:
    import json

    with client.stream("GET", path, headers={"Last-Event-ID": str(last)}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def test_zero_config_start_ready_within_30s_and_restart_keeps_tasks(
    service: ServiceProcess,
) -> None:
    took = service.start(ready_within=30)
    assert took < 30
    log = service.log.read_text()
    assert f"http://127.0.0.1:{service.port}" in log
    assert "curl" in log
    secret = (service.cwd / ".data" / "jwt-secret").stat()
    assert secret.st_mode & 0o777 == 0o600
    headers = {"Authorization": f"Bearer {service.token()}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        clip = (DATA / "two_cities_5s.wav").read_bytes()
        created = client.post("/tasks", files={"file": ("a.wav", clip, "audio/wav")})
        assert created.status_code == 201
        task_id = created.json()["id"]
    assert service.terminate() == 0
    service.start()
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        assert client.get(f"/tasks/{task_id}").status_code == 200
        events = list(sse(client, f"/tasks/{task_id}/events"))
        assert events[-1]["status"] == "completed"
    assert service.terminate() == 0


def test_kill_9_during_transcribing_loses_nothing(service: ServiceProcess) -> None:
    service.start()
    headers = {"Authorization": f"Bearer {service.token()}"}
    clip = repeat_wav((DATA / "two_cities_5s.wav").read_bytes(), 4)
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        task_id = client.post("/tasks", files={"file": ("a.wav", clip, "audio/wav")}).json()["id"]
        for event in sse(client, f"/tasks/{task_id}/events"):
            if event["status"] == "transcribing":
                break
    service.kill9()
    service.start()
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        events = list(sse(client, f"/tasks/{task_id}/events"))
        detail = client.get(f"/tasks/{task_id}").json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    terminal = [
        e
        for e in events
        if e["type"] == "status" and e["status"] in ("completed", "failed", "cancelled")
    ]
    assert [e["status"] for e in terminal] == ["completed"]
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses.count("transcribing") == 1  # resumed in place, not entered twice
    assert detail["status"] == "completed"
    assert detail["transcript"]
    assert service.terminate() == 0


def test_token_command_prints_a_token_and_nothing_else(tmp_path: Path) -> None:
    user = uuid.uuid4()
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "token", "--user", str(user)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = done.stdout.strip()
    assert done.stdout.count("\n") == 1
    secret = (tmp_path / ".data" / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS512"])
    assert claims["sub"] == str(user)
    assert claims["exp"] > claims["iat"]


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MANAGER_HTTP_PORT": "not-a-port"}, "MANAGER_HTTP_PORT"),
        ({"MANAGER_DB_POSTGRES_HOST": "db.example"}, "MANAGER_DB_POSTGRES_PASSWORD"),
        ({"MANAGER_AUTH_MODE": "magic"}, "MANAGER_AUTH_MODE"),
        ({"MANAGER_CAPACITY": "0"}, "MANAGER_CAPACITY"),
        ({"MANAGER_LOG_FORMAT": "xml"}, "MANAGER_LOG_FORMAT"),
    ],
)
def test_bad_configuration_is_one_line_and_status_2(
    tmp_path: Path, env: dict[str, str], mentions: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py")],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("configuration error:")
    assert mentions in lines[0]
    assert "Traceback" not in done.stderr


def test_configuration_from_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MANAGER_HTTP_PORT=not-a-port\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MANAGER_HTTP_PORT" in done.stderr
