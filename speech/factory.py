"""Building the pipeline the settings ask for: one engine per stage, remote or embedded."""

from __future__ import annotations

from uuid import UUID

import httpx
from anyio import CapacityLimiter

from . import ilps_remote, openai_remote, recognise
from .base import (
    Evaluation,
    Evaluator,
    NormalisedAudio,
    Pipeline,
    Preprocessor,
    Transcriber,
    Transcription,
)
from .decode import EmbeddedPreprocessor
from .evaluate import EmbeddedEvaluator
from .http_client import RemoteClient
from .ilps_remote import IlpsFeedbackEvaluator, IlpsPreprocessor, IlpsTranscriber
from .languages import Languages
from .openai_remote import OpenAITranscriber
from .recognise import EmbeddedTranscriber
from .settings import SpeechSettings
from .texts import IlpsTexts


class FirstApplicable:
    """The first evaluator that applies to a task: the ILPS feedback service for a
    text_id, else the embedded one for a reference text."""

    def __init__(self, *evaluators: Evaluator) -> None:
        self._evaluators = evaluators
        #: The engine label of its metrics: its evaluators' in order ("ilps+embedded").
        self.engine = "+".join(str(getattr(e, "engine", type(e).__name__)) for e in evaluators)

    def _pick(self, reference_text: str | None, text_id: UUID | None) -> Evaluator | None:
        return next((e for e in self._evaluators if e.applies(reference_text, text_id)), None)

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return self._pick(reference_text, text_id) is not None

    async def evaluate(
        self,
        transcription: Transcription,
        reference_text: str | None,
        text_id: UUID | None,
        audio: NormalisedAudio | None = None,
    ) -> Evaluation | None:
        evaluator = self._pick(reference_text, text_id)
        if evaluator is None:
            return None
        return await evaluator.evaluate(transcription, reference_text, text_id, audio)


def _client(
    base_url: str, settings: SpeechSettings, api_key: str | None = None
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    timeout = httpx.Timeout(settings.remote_timeout, connect=min(settings.remote_timeout, 10.0))
    return RemoteClient(base_url=base_url, timeout=timeout, headers=headers)


def openai_base(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1`` both mean ``.../v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def build_pipeline(settings: SpeechSettings) -> Pipeline:
    """The stages the settings choose; ``aclose`` closes the remote engines' clients."""
    limiter = CapacityLimiter(settings.engine_workers)
    clients: list[httpx.AsyncClient] = []

    def client(base_url: str, api_key: str | None = None) -> httpx.AsyncClient:
        clients.append(_client(base_url, settings, api_key))
        return clients[-1]

    preprocessor: Preprocessor = EmbeddedPreprocessor(settings.max_audio_seconds, limiter)
    if settings.preprocessor == "ilps":
        url = settings.service_url("preprocessing")
        preprocessor = IlpsPreprocessor(client(url), settings.max_audio_seconds)

    transcriber: Transcriber = EmbeddedTranscriber(
        limiter, settings.segment_seconds, settings.whisper
    )
    if settings.transcriber == "ilps":
        transcriber = IlpsTranscriber(client(settings.service_url("transcribing")))
    elif settings.transcriber == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        base = openai_base(settings.openai_base_url or "")
        transcriber = OpenAITranscriber(client(base, key), settings.openai_model)

    texts = (
        IlpsTexts(client(settings.service_url("texts"))) if settings.service_texts_host else None
    )
    evaluator: Evaluator = EmbeddedEvaluator(limiter, texts)
    if settings.evaluator == "ilps":
        feedback = IlpsFeedbackEvaluator(client(settings.service_url("feedback")))
        evaluator = FirstApplicable(feedback, evaluator)

    async def aclose() -> None:
        for each in clients:
            await each.aclose()

    return Pipeline(preprocessor, transcriber, evaluator, aclose)


def languages_of(settings: SpeechSettings) -> Languages:
    """The languages the transcriber the settings choose recognises."""
    if settings.transcriber == "ilps":
        return ilps_remote.SUPPORTED
    if settings.transcriber == "openai":
        return openai_remote.SUPPORTED
    return recognise.languages_of(settings.whisper)
