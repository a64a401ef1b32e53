"""``POST /v1/audio/transcriptions`` through the official ``openai`` package, against the real
service with the embedded engines; its subtitles read by independent parsers."""

from __future__ import annotations

import io
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
import srt
import webvtt
from sqlalchemy import URL

from tests.openai_helpers import named, sdk, silence, tasks_of
from tests.service_helpers import Running, auth, running_service

pytestmark = pytest.mark.anyio

REFERENCE = "It was the best of times, it was the worst of times"


def _check_cues(spans: list[tuple[float, float, str]], transcript: str, duration: float) -> None:
    """Cue times increase and lie inside the audio; their text is the transcript."""
    assert spans, "no cues"
    starts = [start for start, _, _ in spans]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    for (start, end, _), following in zip(spans, [*spans[1:], None], strict=True):
        assert 0.0 <= start < end <= duration + 0.001
        if following is not None:
            assert end <= following[0]
    assert " ".join(" ".join(text.split()) for _, _, text in spans) == transcript


def _seconds(clock: str) -> float:
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def _task(svc: Running, user: uuid.UUID, task_id: str) -> dict[str, Any]:
    answer = await svc.client.get(f"/tasks/{task_id}", headers=auth(user))
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task


@pytest.mark.timeout(600)
async def test_each_response_format_through_the_official_client(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    """One recording asked for in every format at once: the same Idempotency-Key makes the
    five requests one task (a cheap test on a busy machine), each answered in its format."""
    answers: dict[str, Any] = {}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with running_service(service_database_url, tmp_path) as svc:
        client = sdk(svc, user)

        async def ask(name: str, **options: Any) -> None:
            raw = await client.audio.transcriptions.with_raw_response.create(
                file=named(speech_clip),
                model="whisper-1",
                language="en",
                extra_headers=key,
                extra_body={"reference_text": REFERENCE},
                **options,
            )
            answers[name] = (raw.headers, raw.parse())

        with anyio.fail_after(500):
            async with anyio.create_task_group() as group:
                for response_format in ("json", "text", "srt", "vtt"):
                    group.start_soon(partial(ask, response_format, response_format=response_format))
                group.start_soon(
                    partial(
                        ask,
                        "verbose_json",
                        response_format="verbose_json",
                        timestamp_granularities=["word", "segment"],
                    )
                )
        await client.close()

        (listed,) = await tasks_of(svc, user)  # an ordinary task, in the list
        assert listed["status"] == "completed"
        assert {headers["x-task-id"] for headers, _ in answers.values()} == {listed["id"]}
        task = await _task(svc, user, listed["id"])

    transcript, duration = task["transcript"], task["duration"]
    assert transcript
    assert 4.5 < duration < 5.5
    for headers, _ in answers.values():
        assert headers["x-transcriber"] == "embedded"

    assert answers["json"][1].text == transcript
    assert answers["text"][1].strip() == transcript

    subrip = list(srt.parse(answers["srt"][1]))
    _check_cues(
        [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in subrip],
        transcript,
        duration,
    )
    captions = webvtt.from_buffer(io.StringIO(answers["vtt"][1]))
    _check_cues(
        [(_seconds(c.start), _seconds(c.end), c.text) for c in captions.captions],
        transcript,
        duration,
    )

    verbose = answers["verbose_json"][1]
    assert verbose.text == transcript
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(duration)
    assert verbose.words
    assert [w.word for w in verbose.words] == [w["text"] for w in task["words"]]
    assert all(0 <= w.start <= w.end <= verbose.duration for w in verbose.words)
    assert verbose.segments
    assert " ".join(s.text for s in verbose.segments) == verbose.text
    extra = verbose.model_extra or {}
    assert extra["task_id"] == task["id"]
    assert extra["transcriber"] == "embedded"
    assert extra["pronunciation"]["reference_text"] == REFERENCE
    assert extra["pronunciation"]["accuracy"] == task["accuracy"]
    assert task["accuracy"] is not None


async def test_a_language_the_transcriber_lacks_is_an_openai_shaped_400(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path) as svc:
        async with sdk(svc, user) as client:
            with pytest.raises(openai.BadRequestError) as refused:
                await client.audio.transcriptions.create(
                    file=named(speech_clip), model="whisper-1", language="fr"
                )
        assert await tasks_of(svc, user) == []  # nothing was written
    error = refused.value
    assert error.status_code == 400
    body = error.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "language"
    assert "en-US" in body["error"]["message"]


async def test_a_recording_that_cannot_be_transcribed_is_a_422_not_to_retry(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    key = {"Idempotency-Key": "silence"}
    async with running_service(service_database_url, tmp_path) as svc:
        async with sdk(svc, user) as client:
            with anyio.fail_after(120), pytest.raises(openai.UnprocessableEntityError) as failed:
                await client.audio.transcriptions.create(
                    file=named(silence(1.0)), model="m", extra_headers=key
                )
            # The same key with another recording: refused before anything is written.
            with pytest.raises(openai.BadRequestError) as reused:
                await client.audio.transcriptions.create(
                    file=named(silence(1.5)), model="m", extra_headers=key
                )
        (task,) = await tasks_of(svc, user)
    assert reused.value.response.json()["error"]["code"] == "idempotency_key_reused"
    error = failed.value.response
    assert error.headers["x-should-retry"] == "false"  # the SDKs would upload it again
    assert error.headers["x-task-id"] == task["id"]
    assert error.json()["error"]["code"] == "transcription_failed"
    assert task["failure_reason"] in error.json()["error"]["message"]
    assert task["status"] == "failed"


async def test_other_refusals_are_openai_shaped_too(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    path = "/v1/audio/transcriptions"
    part = {"file": ("a.wav", speech_clip, "audio/wav")}
    async with running_service(service_database_url, tmp_path) as svc:
        async with sdk(svc, user, api_key="not-a-token") as stranger:
            with pytest.raises(openai.AuthenticationError) as unauthorised:
                await stranger.audio.transcriptions.create(file=named(speech_clip), model="m")
        post = svc.client.post
        answers = {
            "granularity without verbose_json": await post(
                path,
                headers=auth(user),
                files=part,
                data={"model": "m", "timestamp_granularities[]": "word"},
            ),
            "unknown format": await post(
                path, headers=auth(user), files=part, data={"model": "m", "response_format": "x"}
            ),
            "no model": await post(path, headers=auth(user), files=part),
            "no file": await post(path, headers=auth(user), data={"model": "m"}),
            "not audio": await post(
                path,
                headers=auth(user),
                files={"file": ("a.wav", b"plain text, not a recording", "audio/wav")},
                data={"model": "m"},
            ),
            "streaming": await post(
                path, headers=auth(user), files=part, data={"model": "m", "stream": "true"}
            ),
            "GET": await svc.client.get(path, headers=auth(user)),
        }
        assert await tasks_of(svc, user) == []
        spec = (await svc.client.get("/openapi.json")).json()
    assert unauthorised.value.response.json()["error"]["code"] == "invalid_api_key"
    params = {
        "granularity without verbose_json": (400, "timestamp_granularities[]"),
        "unknown format": (400, "response_format"),
        "no model": (400, "model"),
        "no file": (400, None),
        "not audio": (400, "file"),
        "streaming": (400, "stream"),
        "GET": (405, None),
    }
    for name, answer in answers.items():
        body = answer.json()
        assert (answer.status_code, body["error"]["param"]) == params[name], (name, body)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert answers["GET"].headers["allow"] == "POST"

    # Both routes are in the OpenAPI document, with every schema they name.
    route = spec["paths"]["/v1/audio/transcriptions"]["post"]
    form = route["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "model"]
    assert {"language", "response_format", "timestamp_granularities[]", "reference_text"} <= set(
        form["properties"]
    )
    transcript = spec["paths"]["/tasks/{task_id}/transcript"]["get"]
    assert set(transcript["responses"]["200"]["content"]) == {
        "text/plain",
        "application/x-subrip",
        "text/vtt",
        "application/json",
    }
    names = {"OpenAIErrorOut", "TranscriptionOut", "VerboseTranscriptionOut", "PendingOut"}
    assert names <= set(spec["components"]["schemas"])
