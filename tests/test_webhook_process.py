"""Webhooks of a real ``run.py`` process: the outbox survives ``kill -9``; the secret command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import free_port
from tests.process_helpers import ROOT, ServiceProcess, clean_env, stop_leftovers
from tests.webhook_helpers import HANG, receiver_running, silent_wav
from webhooks.signing import new_secret


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(tmp_path, free_port(), clean_env())
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)
    stop_leftovers(tmp_path)


def _secret_command(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "webhook-secret"],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kill_9_right_after_the_terminal_transition_the_webhook_arrives_after_restart(
    service: ServiceProcess,
) -> None:
    # The first attempt hangs at the receiver; the service is killed while it waits, so
    # no attempt was ever logged. The delivery was written with the transition: it goes
    # out again after the restart, with the same webhook-id.
    with receiver_running(answers=[HANG]) as receiver:
        service.env.update(
            MANAGER_WEBHOOK_URL=receiver.url,
            MANAGER_WEBHOOK_ALLOW_PRIVATE="true",
            MANAGER_WEBHOOK_TIMEOUT_SECONDS="2",
        )
        service.start()
        secret = _secret_command(service.cwd)
        assert secret.returncode == 0, secret.stderr
        mode = (service.cwd / ".data" / "webhook-secret").stat().st_mode
        headers = {"Authorization": f"Bearer {service.token()}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
            created = client.post("/tasks", files={"file": ("s.wav", silent_wav(), "audio/wav")})
            assert created.status_code == 201
            task_id = created.json()["id"]
        first = receiver.next(60)
        service.kill9()
        service.start()
        second = receiver.next(60)
        assert service.terminate() == 0
    assert mode & 0o777 == 0o600
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    payload = Webhook(secret.stdout.strip()).verify(second.body, second.headers)
    assert payload["type"] == "task.failed"
    assert payload["data"]["task_id"] == task_id


def test_webhook_secret_command_from_elsewhere_creates_nothing_and_says_where_it_looked(
    tmp_path: Path,
) -> None:
    done = _secret_command(tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert not (tmp_path / ".data").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str((tmp_path / ".data" / "webhook-secret").resolve()) in lines[0]
    assert "MANAGER_DATA_DIR" in lines[0]
    assert "MANAGER_WEBHOOK_SECRET" in lines[0]
    assert "Traceback" not in done.stderr


def test_webhook_secret_command_prints_the_configured_secret(tmp_path: Path) -> None:
    secret = new_secret()
    done = _secret_command(tmp_path, MANAGER_WEBHOOK_SECRET=secret)
    assert done.returncode == 0
    assert done.stdout == secret + "\n"
    assert not (tmp_path / ".data").exists()


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MANAGER_WEBHOOK_URL": "ftp://example.com/x"}, "MANAGER_WEBHOOK_URL"),
        ({"MANAGER_WEBHOOK_URL": "http://10.0.0.1/x"}, "MANAGER_WEBHOOK_URL"),
        ({"MANAGER_WEBHOOK_SECRET": "not-a-secret!"}, "MANAGER_WEBHOOK_SECRET"),
        ({"MANAGER_RETENTION_AUDIO_DAYS": "0"}, "MANAGER_RETENTION_AUDIO_DAYS"),
    ],
)
def test_bad_webhook_or_retention_settings_are_one_line_and_status_2(
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
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error:")
    assert mentions in lines[0]
