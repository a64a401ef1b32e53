"""``MANAGER_PROCESSES=2``: one ``run.py``, one embedded PostgreSQL, two members on one port.

A real launcher with its real service processes, as a new user would start it.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import psutil
import pytest

from tests.cluster_helpers import follow_to_the_end, submit, wait_until
from tests.conftest import free_port
from tests.fault_helpers import embedded_socket_dir, ilps_stubs, service_env
from tests.process_helpers import ServiceProcess, stop_leftovers
from tests.service_helpers import auth

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_leftovers(tmp_path)


async def _members(socket_dir: str) -> int:
    connection = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM cluster_instances")
        return count
    finally:
        await connection.close()


def _service_processes(launcher: int) -> list[psutil.Process]:
    """The launcher's forked service processes (not PostgreSQL, not engine workers)."""
    found = []
    for child in psutil.Process(launcher).children():
        try:
            if "run.py" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            pass  # killed, not yet reaped by the launcher
    return found


@pytest.mark.timeout(240)
def test_two_processes_share_the_port_and_the_work_and_one_is_restarted(
    data_dir: Path,
) -> None:
    with ilps_stubs(transcribe_delay=0.3) as stubs:
        service = ServiceProcess(
            data_dir, free_port(), service_env(MANAGER_PROCESSES="2", **stubs.env())
        )
        try:
            service.start(ready_within=90)
            assert service.process is not None
            launcher = service.process.pid
            socket_dir = embedded_socket_dir(data_dir / ".data")

            def members() -> int:
                return anyio.run(_members, socket_dir)

            wait_until(lambda: members() == 2, 60, "both processes joined")
            first = {p.pid for p in _service_processes(launcher)}
            assert len(first) == 2
            headers = auth(uuid.uuid4())
            tasks = [submit(service.url, headers) for _ in range(6)]
            for task_id in tasks:
                frames = follow_to_the_end([service.url], task_id, headers)
                assert frames[-1].data["status"] == "completed"
            # kill -9 of one: the launcher starts it again, the other serves meanwhile.
            victim = sorted(first)[0]
            psutil.Process(victim).send_signal(signal.SIGKILL)
            wait_until(
                lambda: len({p.pid for p in _service_processes(launcher)} - first) == 1,
                60,
                "the launcher started a new process",
            )
            wait_until(lambda: members() == 2, 60, "the new process joined")
            task_id = submit(service.url, headers)
            frames = follow_to_the_end([service.url], task_id, headers)
            assert frames[-1].data["status"] == "completed"
            assert httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200
            assert service.log.read_text().count("service-task-manager is ready at") == 1
            last = {p.pid for p in _service_processes(launcher)}
            assert service.terminate(within=60) == 0
            assert not [pid for pid in last if psutil.pid_exists(pid)]  # all stopped with it
        finally:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(10)


@pytest.mark.timeout(180)
def test_a_killed_launcher_takes_its_service_processes_with_it(data_dir: Path) -> None:
    service = ServiceProcess(data_dir, free_port(), service_env(MANAGER_PROCESSES="2"))
    try:
        service.start(ready_within=90)
        assert service.process is not None
        launcher = service.process.pid
        children = wait_until(
            lambda: (found := _service_processes(launcher)) and len(found) == 2 and found,
            60,
            "both processes started",
        )
        service.kill9()
        # The kernel tells each of them (PR_SET_PDEATHSIG): none is left orphaned.
        wait_until(
            lambda: not [c for c in children if c.is_running() and c.status() != "zombie"],
            30,
            "the service processes ended with their launcher",
        )
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
