"""A synchronous transcription held by one instance while another runs its task, and dies.

Three real instances on one database of the machine's PostgreSQL, the ILPS stage stubs
(real HTTP servers in this process) as their engines.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.cluster_helpers import (
    Cluster,
    journal_of,
    owner_of,
    read_stream,
    shared_database,
    submit,
    wait_until,
)
from tests.conftest import MACHINE_HOST, MACHINE_PORT, machine_pg_available
from tests.fakes import assert_valid_history
from tests.fault_helpers import ilps_stubs, tagged_clip
from tests.service_helpers import auth

pytestmark = pytest.mark.skipif(
    not machine_pg_available(), reason=f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}"
)


def _reached(url: str, task_id: str, headers: dict[str, str], status: str) -> None:
    for frame in read_stream(url, task_id, headers):
        if frame.data.get("status") == status:
            return
    raise AssertionError(f"the stream ended before {status}")


@pytest.mark.timeout(300)
def test_a_synchronous_request_waits_through_the_death_of_the_instance_running_its_task(
    tmp_path: Path,
) -> None:
    user = uuid.uuid4()
    headers = auth(user)
    answers: list[httpx.Response] = []
    tag = uuid.uuid4()  # the stubs know the recording by it

    def transcribe(url: str) -> None:
        answers.append(
            httpx.post(
                f"{url}/v1/audio/transcriptions",
                headers=headers,
                files={"file": ("a.wav", tagged_clip(tag), "audio/wav")},
                data={"model": "whisper-1"},
                timeout=200,
            )
        )

    env = {"MANAGER_CLAIM_LIMIT": "1", "MANAGER_CAPACITY": "2"}
    with shared_database() as database, ilps_stubs(transcribe_delay=4.0) as stubs:
        cluster = Cluster(database, tmp_path, stubs, count=3, env=env)
        try:
            cluster.start()
            a = cluster.instances[0]
            # A owns a task of its own, so the next one it admits goes to an instance with room.
            blocker = submit(a.url, headers)
            assert owner_of(database, blocker) == a.instance_id()
            _reached(a.url, blocker, headers, "transcribing")
            caller = threading.Thread(target=transcribe, args=(a.url,))
            caller.start()

            def the_other_task() -> str | None:
                items = httpx.get(f"{a.url}/tasks", headers=headers, timeout=10).json()["items"]
                return next((t["id"] for t in items if t["id"] != blocker), None)

            task_id = wait_until(the_other_task, 60, "the synchronous request's task")
            owner = wait_until(lambda: owner_of(database, task_id), 60, "an owner for it")
            assert owner != a.instance_id()
            runner = next(i for i in cluster.instances[1:] if i.instance_id() == owner)
            _reached(a.url, task_id, headers, "transcribing")
            runner.kill9()  # mid-stage, while A holds the caller's request
            caller.join(200)
            assert not caller.is_alive()
            task = httpx.get(f"{a.url}/tasks/{task_id}", headers=headers, timeout=10).json()
        finally:
            cluster.stop()
        tasks, journal = journal_of(database)

    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-task-id"] == task_id
    assert answer.json() == {"text": task["transcript"]}
    assert task["status"] == "completed"
    assert_valid_history(journal[uuid.UUID(task_id)])
    assert tasks[uuid.UUID(task_id)].status == "completed"
    transcribed = [
        c for c in stubs.calls if c.stage == "transcribing" and c.tag == tag.bytes[:8].hex()
    ]
    assert len(transcribed) == 2  # begun by the instance that died, done again by another
