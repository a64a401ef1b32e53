"""The ILPS legacy routes, driven with the gateway's exact payloads, against the contract."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from store.records import NewTask, NewUpload
from tests.ilps_helpers import VOCABULARY, android_pcm, read_whole, transcribe
from tests.service_helpers import auth, create, repeat_wav, running_service
from web.routes_ilps import _PAGE

pytestmark = pytest.mark.anyio

NIL = "00000000-0000-0000-0000-000000000000"
DETAIL_KEYS = {"id", "title", "text_id", "status", "result", "accuracy", "mistakes", "comment"}
ITEM_KEYS = {"id", "status", "title", "accuracy", "created_at"}
IPA_TOKENS = re.compile(r"^\S+( \S+)*$")


async def test_android_upload_through_every_route(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    text_id = uuid.uuid4()
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        client = svc.client
        with anyio.fail_after(5):  # the gateway waits 5 s at most: it answers before the work
            answer = await transcribe(client, user, android_pcm(speech_clip), text_id=text_id)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"id"}
        task_id = body["id"]
        assert uuid.UUID(task_id)

        with anyio.fail_after(60):
            stream = await read_whole(client, user, task_id)
        # It starts with the status of the moment, then follows every change to the end.
        every = ["created", "started", "preprocessing", "transcribing", "completed"]
        assert stream.statuses == every[every.index(stream.statuses[0]) :]
        assert stream.seqs == sorted(set(stream.seqs))
        assert stream.retry == ["retry: 15000"]
        for event in stream.events:
            assert [line for line in event.lines if line.startswith("data:")] == [
                f"data: {event.data}"
            ]
            assert json.loads(event.data) == {
                "event": "status_updated",
                "task_id": task_id,
                "status": json.loads(event.data)["status"],
                "retry": 15000,
            }

        detail = await client.post(f"/{task_id}", json={"user_id": str(user)})
        assert detail.status_code == 200, detail.text
        task = detail.json()
        assert set(task) == DETAIL_KEYS
        assert task["id"] == task_id
        assert task["title"] == "The best of times"
        assert task["text_id"] == str(text_id)
        assert task["status"] == "completed"
        assert task["result"]
        assert IPA_TOKENS.match(task["result"])
        # No FEEDBACK service and no reference text: text_id is kept, nothing is scored.
        assert task["accuracy"] is None
        assert task["mistakes"] == []
        assert task["comment"] is None

        second = (await transcribe(client, user, android_pcm(speech_clip), title="x" * 50)).json()
        listed = await client.post("/", json={"user_id": str(user)})
        assert listed.status_code == 200
        items = listed.json()
        assert [item["id"] for item in items] == [second["id"], task_id]  # newest first
        for item in items:
            assert set(item) == ITEM_KEYS
            assert item["status"] in VOCABULARY - {"evaluating"}
            assert item["accuracy"] is None
            assert datetime.fromisoformat(item["created_at"]).tzinfo is not None
        assert items[0]["title"] == "x" * 50
        assert items[1]["title"] == "The best of times"
        assert items[1]["status"] == "completed"
        assert (await client.post("/", json={"user_id": str(uuid.uuid4())})).json() == []

        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"


async def test_not_found_and_validation_errors(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        client = svc.client
        task_id = (await transcribe(client, user, android_pcm(speech_clip))).json()["id"]
        stranger = {"user_id": str(uuid.uuid4())}
        for path in (f"/{task_id}", f"/{task_id}/stream", f"/{uuid.uuid4()}/stream"):
            answer = await client.post(path, json=stranger)
            assert answer.status_code == 404
            assert answer.json() == {"detail": "Task not found."}
        missing = await client.post(f"/{uuid.uuid4()}", json={"user_id": str(user)})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Task not found."}

        owner = {"user_id": str(user)}
        for path, payload in [
            ("/not-a-uuid", owner),
            ("/not-a-uuid/stream", owner),
            (f"/{task_id}", {}),
            (f"/{task_id}", {"user_id": "nope"}),
            (f"/{task_id}/stream", {"userid": str(user)}),
            ("/", {}),
            ("/", {"user_id": 7}),
        ]:
            answer = await client.post(path, json=payload)
            assert answer.status_code == 422, (path, payload)
            assert isinstance(answer.json()["detail"], list)
        huge = await client.post("/", content=b" " * 70_000 + b'{"user_id": "x"}')
        assert huge.status_code == 413
        assert huge.json()["detail"]
        not_json = await client.post("/", content=b"user_id=1")
        assert not_json.status_code == 422
        assert not_json.json()["detail"]
        assert (await client.post("/nope", json=owner)).json()["detail"][0]["loc"] == [
            "path",
            "uuid",
        ]
        resume = await client.post(f"/{task_id}/stream", json=owner, headers={"Last-Event-ID": "x"})
        assert resume.status_code == 422
        assert resume.json()["detail"]

        pcm = android_pcm(speech_clip)
        good = {"title": "t", "text_id": str(uuid.uuid4()), "user_id": str(user)}
        for fields in [
            {k: v for k, v in good.items() if k != "text_id"},
            {k: v for k, v in good.items() if k != "user_id"},
            {k: v for k, v in good.items() if k != "title"},
            {**good, "user_id": "someone"},
            {**good, "title": "x" * 51},
        ]:
            answer = await client.post(
                "/transcribe",
                data=fields,
                files={"file": ("audio_record.pcm", pcm, "application/octet-stream")},
            )
            assert answer.status_code == 422, fields
            assert answer.json()["detail"]
        no_file = await client.post("/transcribe", data=good, files={"other": ("a", b"x")})
        assert no_file.status_code == 422
        assert no_file.json()["detail"]
        assert len((await client.post("/", json=owner)).json()) == 1  # nothing else was stored


async def test_tasks_are_shared_with_the_native_api(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        client = svc.client
        text_id = uuid.uuid4()
        legacy_id = (
            await transcribe(client, user, android_pcm(speech_clip), text_id=text_id)
        ).json()["id"]
        native = await client.get(f"/tasks/{legacy_id}", headers=auth(user))
        assert native.status_code == 200
        assert native.json()["text_id"] == str(text_id)
        assert native.json()["title"] == "The best of times"
        other = await client.get(f"/tasks/{legacy_id}", headers=auth(uuid.uuid4()))
        assert other.status_code == 404

        native_id = (await create(client, user, speech_clip, title="native")).json()["id"]
        with anyio.fail_after(60):
            stream = await read_whole(client, user, native_id)
        assert stream.statuses[-1] == "completed"
        detail = (await client.post(f"/{native_id}", json={"user_id": str(user)})).json()
        assert detail["title"] == "native"
        assert detail["text_id"] == NIL  # created without one: the nil UUID, never null
        assert detail["status"] == "completed"
        assert detail["result"]
        listed = (await client.post("/", json={"user_id": str(user)})).json()
        assert [item["id"] for item in listed] == [native_id, legacy_id]


async def test_a_cancelled_task_reads_as_failed_with_a_comment(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        client = svc.client
        task_id = await transcribe(client, user, repeat_wav(speech_clip, 4), filename="a.wav")
        task_id = task_id.json()["id"]
        cancelled = await client.post(f"/tasks/{task_id}/cancel", headers=auth(user))
        assert cancelled.status_code == 202, cancelled.text
        with anyio.fail_after(10):
            stream = await read_whole(client, user, task_id)
        assert stream.statuses[-1] == "failed"
        assert set(stream.statuses) <= VOCABULARY
        detail = (await client.post(f"/{task_id}", json={"user_id": str(user)})).json()
        assert detail["status"] == "failed"
        assert "cancelled" in detail["comment"]
        assert detail["result"] is None
        assert detail["accuracy"] is None
        (item,) = (await client.post("/", json={"user_id": str(user)})).json()
        assert item["status"] == "failed"
        again = await read_whole(client, user, task_id)
        assert again.statuses == ["failed"]  # a new stream starts with the current status


async def test_without_the_switch_the_legacy_routes_are_not_there(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        client = svc.client
        answer = await transcribe(client, user, android_pcm(speech_clip))
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "detail": "Not Found"}
        body = {"user_id": str(user)}
        task_id = uuid.uuid4()
        for path in (f"/{task_id}", f"/{task_id}/stream"):
            assert (await client.post(path, json=body)).status_code == 404
        # "/" is the web console's page: the path is there, the legacy method is not.
        root = await client.post("/", json=body)
        assert root.status_code == 405
        assert root.headers["allow"] == "GET, HEAD"
        assert (await client.get("/health")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_the_list_of_many_tasks_is_whole_and_sent_a_page_at_a_time(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    """Before: every task read into one list, then encoded at once (a Content-Length)."""
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        store = svc.service.services.store
        data = b"RIFF....WAVE" + b"\0" * 64
        upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
        made = [
            (await store.admit(NewTask(user, f"t{n}", "en-US"), upload))[0].id
            for n in range(_PAGE * 2 + 1)
        ]
        answer = await svc.client.post("/", json={"user_id": str(user)})
        empty = await svc.client.post("/", json={"user_id": str(uuid.uuid4())})
    assert answer.status_code == 200
    assert "content-length" not in answer.headers  # streamed, page by page
    items = answer.json()
    assert [item["id"] for item in items] == [str(task) for task in reversed(made)]
    assert set(items[0]) == {"id", "status", "title", "accuracy", "created_at"}
    assert empty.json() == []
