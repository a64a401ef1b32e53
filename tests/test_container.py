"""The image, built and run as ILPS deploys it: its variables only, one container or
two in a cluster, the embedded database in a volume; the compose files.

Marked ``container``: they need a Docker daemon (.ci/run starts one) and, the first time
on a machine, a few minutes to make the base image and build.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from sqlalchemy import URL

from tests.conftest import MACHINE_HOST, MACHINE_PORT, empty_database, machine_pg_available
from tests.container_helpers import ROOT, Built, base_image, build_image, docker, require_daemon
from tests.container_running import (
    ACCURACY,
    IPA,
    MISTAKES,
    StageFakes,
    adocker,
    container,
    owned_tasks,
)
from tests.ilps_helpers import android_pcm, mono_16k_wav, read_whole, transcribe

# The first test to use the image may build it: minutes on a new machine. Every wait of
# the tests themselves has its own bound.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

#: What ILPS's .env template gives the task manager (shared/docs/ILPS-CONTRACT.md).
ILPS_VARIABLES = [
    "MANAGER_DEBUG_MODE",
    "MANAGER_DB_POSTGRES_PASSWORD",
    "MANAGER_DB_POSTGRES_HOST",
    "MANAGER_SERVICE_PREPROCESSING_HOST",
    "MANAGER_SERVICE_PREPROCESSING_PORT",
    "MANAGER_SERVICE_TRANSCRIBING_HOST",
    "MANAGER_SERVICE_TRANSCRIBING_PORT",
    "MANAGER_SERVICE_FEEDBACK_HOST",
    "MANAGER_SERVICE_FEEDBACK_PORT",
]
#: `docker stop` waits this long before SIGKILL: the service's grace (10 s) and its drain.
STOP_GRACE = 30
#: Marks the role and database of ILPS's init.sql that this test made on the machine.
MARK = "service-task-manager container test"


def example_env() -> dict[str, str]:
    lines = (ROOT / "ilps.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_ilps_env_example_holds_exactly_ilps_variables() -> None:
    assert list(example_env()) == ILPS_VARIABLES


def _compose() -> list[str] | None:
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


@pytest.mark.parametrize("file", ["compose.yaml", "compose.cluster.yaml"])
def test_the_compose_files_are_valid(file: str) -> None:
    compose = _compose()
    if compose is None:
        pytest.skip(
            "neither the compose plugin nor docker-compose (apt-get install docker-compose)"
        )
    env = {**os.environ, "MANAGER_AUTH_JWT_SECRET": "s" * 64}
    result = subprocess.run(
        [*compose, "-f", file, "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def image() -> Built:
    """One build for every test here: cached layers make a rebuild take seconds."""
    require_daemon()
    return build_image(base_image(), os.environ.get("STM_TEST_IMAGE_EXTRA", ""))


async def _admin(*statements: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(
        user="postgres", database="postgres", host=MACHINE_HOST, port=MACHINE_PORT
    )
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await connection.fetch(statement)
        return rows
    finally:
        await connection.close()


def _drop_ilps_database() -> None:
    anyio.run(
        _admin,
        "DROP DATABASE IF EXISTS tasks WITH (FORCE)",
        "DROP ROLE IF EXISTS service_task_manager",
    )


@pytest.fixture
def ilps_database() -> Iterator[str]:
    """What ILPS's init.sql makes, on the machine's server: the role service_task_manager
    and its database tasks (the service's defaults, so ILPS's .env names neither).
    Yields the role's password."""
    if not machine_pg_available():
        pytest.skip(f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}")
    found = anyio.run(
        _admin,
        "SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database"
        " WHERE datname = 'tasks' UNION ALL SELECT shobj_description(oid, 'pg_authid')"
        " FROM pg_roles WHERE rolname = 'service_task_manager'",
    )
    if any(row["mark"] != MARK for row in found):
        pytest.skip("the machine's PostgreSQL has a database tasks or a role service_task_manager")
    _drop_ilps_database()  # left by a run of this test that was killed
    password = uuid.uuid4().hex
    anyio.run(
        _admin,
        f"CREATE ROLE service_task_manager LOGIN PASSWORD '{password}'",
        f"COMMENT ON ROLE service_task_manager IS '{MARK}'",
        "CREATE DATABASE tasks OWNER service_task_manager",
        f"COMMENT ON DATABASE tasks IS '{MARK}'",
    )
    yield password
    _drop_ilps_database()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.anyio
async def test_ilps_runs_it_with_its_own_variables_only(
    image: Built, ilps_database: str, tmp_path: Path, speech_clip: bytes
) -> None:
    assert _port_free(8064), "port 8064 is taken: the container listens there, as in ILPS"
    user = uuid.uuid4()
    body = {"user_id": str(user)}
    pcm = android_pcm(speech_clip)
    async with StageFakes(mono_16k_wav(speech_clip)).serving() as fakes:
        environment = {
            **example_env(),
            "MANAGER_DB_POSTGRES_PASSWORD": ilps_database,
            "MANAGER_DB_POSTGRES_HOST": "127.0.0.1",
            **fakes.environment(),
        }
        assert list(environment) == ILPS_VARIABLES
        async with (
            container(image.tag, environment, tmp_path, port=8064) as c,
            httpx.AsyncClient(base_url=c.url, timeout=30) as client,
        ):
            await c.ilps_healthy()
            assert (await c.exec("id", "-u")).stdout.strip() == "10001"

            fakes.release.set()
            text_id = uuid.uuid4()
            created = await transcribe(client, user, pcm, text_id=text_id)
            assert created.status_code == 200, created.text
            first = created.json()["id"]
            with anyio.fail_after(60):
                stream = await read_whole(client, user, first)
            assert stream.statuses[-1] == "completed"
            detail = (await client.post(f"/{first}", json=body)).json()
            assert detail == {
                "id": first,
                "title": "The best of times",
                "text_id": str(text_id),
                "status": "completed",
                "result": IPA,
                "accuracy": ACCURACY,
                "mistakes": MISTAKES,
                "comment": None,
            }
            (item,) = (await client.post("/", json=body)).json()
            assert (item["id"], item["status"], item["accuracy"]) == (first, "completed", ACCURACY)

            # SIGTERM while a task waits for its score: the service stops by itself within
            # the grace (exit 0, not docker's SIGKILL), and the next start finishes the task.
            fakes.release, fakes.scoring = anyio.Event(), anyio.Event()
            second = (await transcribe(client, user, pcm)).json()["id"]
            with anyio.fail_after(60):
                await fakes.scoring.wait()
            assert await c.stop(STOP_GRACE) == 0
            await c.start()
            await c.ilps_healthy()
            fakes.release.set()
            with anyio.fail_after(60):
                stream = await read_whole(client, user, second)
            assert stream.statuses[-1] == "completed"
            listed = (await client.post("/", json=body)).json()
            assert [(t["id"], t["status"]) for t in listed] == [
                (second, "completed"),
                (first, "completed"),
            ]


@pytest.fixture
def cluster_database(tmp_path: Path) -> Iterator[str]:
    """A new empty database on the machine's server, dropped after the test."""
    database: URL = empty_database("machine", tmp_path)  # skips without the server
    name = str(database.database)
    yield name
    anyio.run(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.anyio
async def test_two_containers_on_one_database_are_one_cluster(
    image: Built, cluster_database: str, tmp_path: Path, speech_clip: bytes
) -> None:
    user = uuid.uuid4()
    body = {"user_id": str(user)}
    pcm = android_pcm(speech_clip)
    async with StageFakes(mono_16k_wav(speech_clip)).serving() as fakes:
        shared = {
            "MANAGER_DB_POSTGRES_HOST": MACHINE_HOST,
            "MANAGER_DB_POSTGRES_PORT": str(MACHINE_PORT),
            "MANAGER_DB_POSTGRES_USER": "postgres",
            "MANAGER_DB_POSTGRES_PASSWORD": "unused",  # trust authentication
            "MANAGER_DB_POSTGRES_NAME": cluster_database,
            **fakes.environment(),
        }
        ports = _free_port(), _free_port()
        async with (
            container(image.tag, {**shared, "MANAGER_HTTP_PORT": str(ports[0]),
                      "MANAGER_INSTANCE_NAME": "a"}, tmp_path, port=ports[0]) as a,
            container(image.tag, {**shared, "MANAGER_HTTP_PORT": str(ports[1]),
                      "MANAGER_INSTANCE_NAME": "b"}, tmp_path, port=ports[1]) as b,
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):  # fmt: skip
            await a.ready()
            await b.ready()

            # Created on one, followed to its end from the other.
            fakes.release.set()
            first = (await transcribe(on_a, user, pcm)).json()["id"]
            with anyio.fail_after(60):
                stream = await read_whole(on_b, user, first)
            assert stream.statuses[-1] == "completed"

            # Its owner killed mid-task: the other finishes it.
            fakes.release, fakes.scoring = anyio.Event(), anyio.Event()
            second = (await transcribe(on_a, user, pcm)).json()["id"]
            with anyio.fail_after(60):
                await fakes.scoring.wait()
            owners = [await owned_tasks(client) for client in (on_a, on_b)]
            assert sorted(owners) == [0, 1]
            owner, survivor = (a, on_b) if owners[0] else (b, on_a)
            await adocker("kill", owner.name)
            fakes.release.set()
            with anyio.fail_after(90):
                stream = await read_whole(survivor, user, second)
            assert stream.statuses[-1] == "completed"
            detail = (await survivor.post(f"/{second}", json=body)).json()
            assert (detail["status"], detail["result"]) == ("completed", IPA)


@pytest.mark.anyio
async def test_the_embedded_database_keeps_tasks_in_the_volume(
    image: Built, tmp_path: Path, speech_clip: bytes
) -> None:
    volume = f"stm-test-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    user = uuid.uuid4()
    body = {"user_id": str(user)}
    await adocker("volume", "create", volume)
    try:
        async with (
            container(image.tag, {"MANAGER_HTTP_PORT": str(port)}, tmp_path, port=port,
                      volume=volume) as c,
            httpx.AsyncClient(base_url=c.url, timeout=30) as client,
        ):  # fmt: skip
            await c.ready()
            # The speech models the wheels ship: a real recording, recognised in the image.
            task = (await transcribe(client, user, android_pcm(speech_clip))).json()["id"]
            with anyio.fail_after(120):
                stream = await read_whole(client, user, task)
            assert stream.statuses[-1] == "completed"
            result = (await client.post(f"/{task}", json=body)).json()["result"]
            assert result

            # No token in the log; the data dir's secret signs one on request.
            log = await c.logs()
            assert "TOKEN" not in log
            assert "eyJ" not in log  # how every JWT begins
            token = await c.exec("python", "run.py", "token", "--user", str(user))
            assert token.stdout.count(".") == 2
            # No development extras in the image.
            assert (await c.exec("python", "-c", "import pytest", check=False)).returncode != 0

            assert await c.stop(STOP_GRACE) == 0
            await c.start()
            await c.ready()
            detail = (await client.post(f"/{task}", json=body)).json()
            assert (detail["status"], detail["result"]) == ("completed", result)
    finally:
        await adocker("volume", "rm", "--force", volume, check=False)


def test_the_image_declares_its_user_port_volume_and_health_check(image: Built) -> None:
    (inspected,) = json.loads(docker("image", "inspect", image.tag).stdout)
    config = inspected["Config"]
    assert config["User"] == "manager"
    assert list(config["ExposedPorts"]) == ["8064/tcp"]
    assert list(config["Volumes"]) == ["/data"]
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["Cmd"] == ["python", "run.py"]
