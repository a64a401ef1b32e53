"""Settings and the pipeline they build."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
from anyio import CapacityLimiter
from pydantic import ValidationError

from speech.base import Phoneme, Transcription
from speech.decode import EmbeddedPreprocessor
from speech.evaluate import EmbeddedEvaluator
from speech.factory import FirstApplicable, build_pipeline, openai_base
from speech.ilps_remote import IlpsFeedbackEvaluator, IlpsPreprocessor, IlpsTranscriber
from speech.openai_remote import OpenAITranscriber
from speech.recognise import EmbeddedTranscriber
from speech.settings import SpeechSettings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MANAGER_"):
            monkeypatch.delenv(name)


def settings(**env: str) -> SpeechSettings:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return SpeechSettings(_env_file=None)


def test_defaults_are_embedded() -> None:
    s = settings()
    assert (s.preprocessor, s.transcriber, s.evaluator) == ("embedded", "embedded", "embedded")
    assert s.max_audio_seconds == 300
    assert s.engine_workers == (os.cpu_count() or 1)
    assert s.openai_model == "whisper-1"
    assert s.service_feedback_protocol == "http"


def test_a_service_host_selects_the_remote_engine() -> None:
    s = settings(
        MANAGER_SERVICE_TRANSCRIBING_HOST="asr", MANAGER_SERVICE_TRANSCRIBING_PORT="8080",
        MANAGER_SERVICE_FEEDBACK_HOST="fb", MANAGER_SERVICE_FEEDBACK_PROTOCOL="https",
        MANAGER_MAX_AUDIO_SECONDS="60", MANAGER_ENGINE_WORKERS="3",
    )  # fmt: skip
    assert (s.preprocessor, s.transcriber, s.evaluator) == ("embedded", "ilps", "ilps")
    assert s.service_url("transcribing") == "http://asr:8080"
    assert s.service_url("feedback") == "https://fb"
    assert (s.max_audio_seconds, s.engine_workers) == (60, 3)


def test_openai_base_url_selects_openai_unless_told_otherwise() -> None:
    assert settings(MANAGER_OPENAI_BASE_URL="http://w:8000").transcriber == "openai"
    chosen = settings(MANAGER_OPENAI_BASE_URL="http://w:8000", MANAGER_TRANSCRIBER="embedded")
    assert chosen.transcriber == "embedded"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MANAGER_TRANSCRIBER": "ilps"}, "MANAGER_SERVICE_TRANSCRIBING_HOST"),
        ({"MANAGER_TRANSCRIBER": "openai"}, "MANAGER_OPENAI_BASE_URL"),
        ({"MANAGER_EVALUATOR": "ilps"}, "MANAGER_SERVICE_FEEDBACK_HOST"),
        ({"MANAGER_TRANSCRIBER": "vosk"}, "transcriber"),
        ({"MANAGER_MAX_AUDIO_SECONDS": "0"}, "max_audio_seconds"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**env)


def test_openai_base() -> None:
    assert openai_base("http://w:8000") == "http://w:8000/v1"
    assert openai_base("http://w:8000/v1/") == "http://w:8000/v1"


@pytest.mark.anyio
async def test_embedded_pipeline_shares_the_engine_workers_between_its_stages() -> None:
    pipeline = build_pipeline(settings(MANAGER_ENGINE_WORKERS="3"))
    assert isinstance(pipeline.preprocessor, EmbeddedPreprocessor)
    assert isinstance(pipeline.transcriber, EmbeddedTranscriber)
    assert isinstance(pipeline.evaluator, EmbeddedEvaluator)
    # Evaluating runs where decoding and recognition run, within the same bound.
    limiters = {id(s._limiter) for s in (pipeline.preprocessor, pipeline.transcriber)}
    assert limiters == {id(pipeline.evaluator._limiter)}
    assert pipeline.evaluator._limiter.total_tokens == 3
    assert pipeline.aclose is not None
    await pipeline.aclose()


@pytest.mark.anyio
async def test_remote_pipeline_and_aclose() -> None:
    pipeline = build_pipeline(
        settings(
            MANAGER_SERVICE_PREPROCESSING_HOST="pre",
            MANAGER_SERVICE_TRANSCRIBING_HOST="asr",
            MANAGER_SERVICE_FEEDBACK_HOST="fb",
        )  # fmt: skip
    )
    assert isinstance(pipeline.preprocessor, IlpsPreprocessor)
    assert isinstance(pipeline.transcriber, IlpsTranscriber)
    assert isinstance(pipeline.evaluator, FirstApplicable)
    clients = [pipeline.preprocessor._client, pipeline.transcriber._client]
    assert pipeline.aclose is not None
    await pipeline.aclose()
    assert all(c.is_closed for c in clients)
    openai = build_pipeline(settings(MANAGER_OPENAI_BASE_URL="http://w/v1"))
    assert isinstance(openai.transcriber, OpenAITranscriber)
    assert str(openai.transcriber._client.base_url) == "http://w/v1/"
    assert openai.aclose is not None
    await openai.aclose()


@pytest.mark.anyio
async def test_feedback_for_a_text_id_else_embedded_for_a_text() -> None:
    class Fake(IlpsFeedbackEvaluator):
        def __init__(self) -> None:
            pass

    chain = FirstApplicable(Fake(), EmbeddedEvaluator(CapacityLimiter(1)))
    assert chain.applies(None, uuid4())
    assert chain.applies("a text", None)
    assert not chain.applies(None, None)
    transcription = Transcription("", phonemes=(Phoneme("ɪ", 0, 0), Phoneme("t", 0, 0)))
    result = await chain.evaluate(transcription, "it", None)
    assert result is not None
    assert result.accuracy == 100.0
    assert await chain.evaluate(transcription, None, None) is None
