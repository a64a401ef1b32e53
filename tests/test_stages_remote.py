"""Remote engines against small real HTTP servers, one per contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import anyio
import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from speech.base import (
    AudioInput,
    NormalisedAudio,
    PermanentStageError,
    Phoneme,
    StageError,
    Transcription,
    TransientStageError,
)
from speech.ilps_remote import IlpsFeedbackEvaluator, IlpsPreprocessor, IlpsTranscriber
from speech.openai_remote import OpenAITranscriber, language_code
from tests.stages_helpers import serve, wav_of

TONE = (3000 * np.sin(np.arange(16_000) / 5)).astype(np.int16)
AUDIO = NormalisedAudio(TONE.astype("<i2").tobytes(), 1.0)
TEXT_ID = UUID("6f1c7d2e-0b7a-4a43-9d51-9d5d3c0f2a11")
FEEDBACK = {
    "accuracy": 87.5,
    "mistakes": [
        {"reference": {"position": 2, "value": "ð"}, "actual": {"position": 2, "value": "d"},
         "type": "Replacement"},
        {"reference": None, "actual": {"position": 7, "value": "s"}, "type": "Insertion"},
    ],
}  # fmt: skip
WHISPER = {
    "text": " It was the best of times.",
    "language": "english",
    "duration": 2.0,
    "words": [
        {"word": " It", "start": 0.1, "end": 0.3, "probability": 0.9},
        {"word": " was", "start": 0.3, "end": 0.6},
        {"word": " the", "start": 0.6, "end": 0.7},
        {"word": " best", "start": 0.7, "end": 1.1},
        {"word": " of", "start": 1.1, "end": 1.2},
        {"word": " times.", "start": 1.2, "end": 1.8},
    ],
}


@dataclass
class Remote:
    """A test server: what it answers next, and what it was sent."""

    url: str = ""
    mode: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)


async def _form(request: Request) -> dict[str, Any]:
    seen: dict[str, Any] = {"headers": dict(request.headers)}
    if request.headers.get("content-type", "").startswith("multipart/"):
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    seen[key] = (value.filename, value.content_type, await value.read())
                else:
                    seen[key] = value
    else:
        seen["json"] = await request.json()
    return seen


def _app(path: str, remote: Remote, ok: Any, malformed: Any) -> Starlette:
    async def endpoint(request: Request) -> Response:
        remote.requests.append(await _form(request))
        match remote.mode:
            case "slow":
                await anyio.sleep(2)
                return Response(b"late")
            case "5xx":
                return JSONResponse({"detail": "overloaded"}, status_code=503)
            case "429":
                return JSONResponse({"detail": "slow down"}, status_code=429)
            case "4xx":
                return JSONResponse({"detail": "unsupported audio"}, status_code=422)
            case "malformed":
                return Response(malformed)
            case "8 kHz":
                return Response(wav_of(TONE, 8_000), media_type="audio/wav")
        return ok() if callable(ok) else JSONResponse(ok)

    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])


def _server(path: str, ok: Any, malformed: Any) -> Iterator[Remote]:
    remote = Remote()
    with serve(_app(path, remote, ok, malformed)) as url:
        remote.url = url
        yield remote


@pytest.fixture(scope="module")
def preprocessing() -> Iterator[Remote]:
    yield from _server("/", lambda: Response(wav_of(TONE, 16_000), media_type="audio/wav"),
                       b"<html>not a wav</html>")  # fmt: skip


@pytest.fixture(scope="module")
def transcribing() -> Iterator[Remote]:
    yield from _server("/", {"transcription": "ɪ t w ə z"}, b'{"text": "no transcription"}')


@pytest.fixture(scope="module")
def feedback() -> Iterator[Remote]:
    bad = json.dumps({"accuracy": 187.5, "mistakes": [{"type": "Swap"}]}).encode()
    yield from _server("/", FEEDBACK, bad)


@pytest.fixture(scope="module")
def whisper() -> Iterator[Remote]:
    yield from _server("/v1/audio/transcriptions", WHISPER, b"{not json")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    remote: Remote = request.getfixturevalue(request.param)
    remote.mode, remote.requests[:] = "ok", []
    base = remote.url + ("/v1" if request.param == "whisper" else "")
    async with httpx.AsyncClient(base_url=base, timeout=0.5) as client:
        yield client


async def _noop(fraction: float) -> None:
    pass


async def _call(engine: str, client: httpx.AsyncClient) -> Any:
    with anyio.fail_after(10):
        match engine:
            case "preprocessing":
                upload = AudioInput(b"\x01\x02" * 1000, "application/octet-stream", "a.pcm")
                return await IlpsPreprocessor(client, 300).preprocess(upload)
            case "transcribing":
                return await IlpsTranscriber(client).transcribe(AUDIO, "en-US", _noop)
            case "feedback":
                transcription = Transcription("", phonemes=(Phoneme("ɪ", 0, 0),))
                return await IlpsFeedbackEvaluator(client).evaluate(transcription, None, TEXT_ID)
            case _:
                return await OpenAITranscriber(client, "whisper-1").transcribe(AUDIO, "en", _noop)


ENGINES = ["preprocessing", "transcribing", "feedback", "whisper"]


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["preprocessing"], indirect=True)
async def test_ilps_preprocessing(client: httpx.AsyncClient, preprocessing: Remote) -> None:
    audio = await _call("preprocessing", client)
    assert audio.duration == 1.0
    assert audio.pcm == TONE.astype("<i2").tobytes()
    sent = preprocessing.requests[0]
    assert sent["file"] == ("audio.pcm", "application/octet-stream", b"\x01\x02" * 1000)


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["transcribing"], indirect=True)
async def test_ilps_transcribing(client: httpx.AsyncClient, transcribing: Remote) -> None:
    result = await _call("transcribing", client)
    assert result.transcript == result.ipa == "ɪ t w ə z"
    assert result.words == ()
    sent = transcribing.requests[0]
    assert sent["lang"] == "english"
    filename, content_type, wav = sent["file"]
    assert (filename, content_type) == ("audio.wav", "audio/wav")
    assert (wav[:4], wav[8:12]) == (b"RIFF", b"WAVE")


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["feedback"], indirect=True)
async def test_ilps_feedback(client: httpx.AsyncClient, feedback: Remote) -> None:
    result = await _call("feedback", client)
    assert result.accuracy == 87.5
    assert result.mistakes == FEEDBACK["mistakes"]
    assert feedback.requests[0]["json"] == {"text_id": str(TEXT_ID), "actual_result": "ɪ"}
    evaluator = IlpsFeedbackEvaluator(client)
    assert evaluator.applies(None, uuid4())
    assert not evaluator.applies("text", None)


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["whisper"], indirect=True)
async def test_openai_transcription(client: httpx.AsyncClient, whisper: Remote) -> None:
    result = await _call("whisper", client)
    assert result.transcript == "It was the best of times."
    assert [w.text for w in result.words] == ["It", "was", "the", "best", "of", "times."]
    assert result.words[0].confidence == 0.9
    assert result.words[1].confidence == 1.0
    assert result.ipa == "ɪ t w ɑ z ð ə b ɛ s t ə v t aɪ m z"
    best = [p for p in result.phonemes if 0.7 <= p.start < 1.1]
    assert [p.ipa for p in best] == ["b", "ɛ", "s", "t"]
    assert best[-1].end == 1.1
    sent = whisper.requests[0]
    assert sent["model"] == "whisper-1"
    assert sent["response_format"] == "verbose_json"
    assert sent["timestamp_granularities[]"] == "word"
    assert sent["language"] == "en"
    assert sent["file"][:2] == ("audio.wav", "audio/wav")


@pytest.mark.anyio
async def test_openai_api_key_and_answers_without_words(whisper: Remote) -> None:
    whisper.mode, whisper.requests[:] = "ok", []
    headers = {"Authorization": "Bearer sk-test"}
    async with httpx.AsyncClient(base_url=whisper.url + "/v1", headers=headers) as client:
        await OpenAITranscriber(client, "large-v3").transcribe(AUDIO, "fr-FR", _noop)
    sent = whisper.requests[0]
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    assert sent["model"] == "large-v3"
    assert sent["language"] == "fr"
    assert language_code("english") == "en"
    assert language_code("klingon") is None


MODES = [
    ("slow", TransientStageError, "did not answer in time"),
    ("5xx", TransientStageError, r"is unavailable \(HTTP 503\)$"),
    ("429", TransientStageError, r"is unavailable \(HTTP 429\)$"),
    ("4xx", PermanentStageError, r"refused the request \(HTTP 422\)$"),
    ("malformed", TransientStageError, "(cannot read|no 16 kHz mono WAV)"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("client", ENGINES, indirect=True)
@pytest.mark.parametrize(("mode", "error", "reason"), MODES)
async def test_failures(
    client: httpx.AsyncClient,
    request: pytest.FixtureRequest,
    mode: str,
    error: type[StageError],
    reason: str,
) -> None:
    engine = request.node.callspec.params["client"]
    request.getfixturevalue(engine).mode = mode
    with pytest.raises(error, match=reason):
        await _call(engine, client)


#: The name each engine gives its service in a reason a user reads.
SERVICE = {
    "preprocessing": "the preprocessing service",
    "transcribing": "the transcribing service",
    "feedback": "the feedback service",
    "whisper": "the transcription service",
}


@pytest.mark.anyio
@pytest.mark.parametrize("client", ENGINES, indirect=True)
@pytest.mark.parametrize(
    ("mode", "status", "says"),
    [("4xx", 422, "refused the request"), ("5xx", 503, "is unavailable")],
)
async def test_a_remote_error_gives_a_short_reason_and_logs_the_services_detail(
    client: httpx.AsyncClient,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    status: int,
    says: str,
) -> None:
    engine = request.node.callspec.params["client"]
    request.getfixturevalue(engine).mode = mode
    with caplog.at_level("WARNING", logger="speech.remote"), pytest.raises(StageError) as caught:
        await _call(engine, client)
    assert caught.value.reason == f"{SERVICE[engine]} {says} (HTTP {status})"
    detail = "unsupported audio" if mode == "4xx" else "overloaded"
    assert detail in caplog.text  # the service's own words are for the operator


@pytest.mark.anyio
@pytest.mark.parametrize("engine", ENGINES)
async def test_unreachable_is_transient(engine: str) -> None:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(TransientStageError) as caught:
            await _call(engine, client)
    assert caught.value.reason == f"{SERVICE[engine]} could not be reached"


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["preprocessing"], indirect=True)
async def test_preprocessing_answer_in_another_format(
    client: httpx.AsyncClient, preprocessing: Remote
) -> None:
    preprocessing.mode = "8 kHz"
    with pytest.raises(TransientStageError, match="no 16 kHz mono WAV"):
        await _call("preprocessing", client)
