"""An OpenAI-compatible transcription server (speaches, whisper.cpp's server, vLLM...).

Whisper gives words, not phones: the phonemes are the dictionary pronunciations
of the recognised words (``pronounce.py``), spread evenly over each word's time.
A server that sends no word probability gets confidence 1.0.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from .base import NormalisedAudio, Phoneme, ProgressCallback, Transcription, Word
from .languages import Languages, well_formed
from .pronounce import pronounce
from .remote import parse, post
from .wav import to_wav

_ISO_639_1 = {"english": "en"}


class _Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float | None = None


class _Answer(BaseModel):
    text: str
    words: list[_Word] | None = None


def language_code(language: str) -> str | None:
    """``en-US`` -> ``en``; None (let the server detect) when there is no two-letter code."""
    code = language.strip().lower().replace("_", "-").split("-", 1)[0]
    code = _ISO_639_1.get(code, code)
    return code if len(code) == 2 and code.isalpha() else None


def _passable(language: str) -> bool:
    return well_formed(language) and language_code(language) is not None


#: Whisper-like servers know dozens of languages, and which depends on the model: any
#: tag with a two-letter code is passed on, and the server has the last word.
SUPPORTED = Languages(
    _passable,
    "any ISO 639-1 language code, alone or with a region (en, en-US, de, pt-BR...)",
    "the transcription service",
)


def _phonemes(text: str, start: float, end: float) -> list[Phoneme]:
    tokens = [t for w in pronounce(text) for t in w.ipa]
    step = (end - start) / max(len(tokens), 1)
    return [
        Phoneme(t, round(start + i * step, 3), round(start + (i + 1) * step, 3))
        for i, t in enumerate(tokens)
    ]


class OpenAITranscriber:
    """``POST {base}/v1/audio/transcriptions`` with ``response_format=verbose_json``."""

    #: The engine label of its metrics.
    engine = "openai"

    def __init__(self, client: httpx.AsyncClient, model: str) -> None:
        self._client = client
        self._model = model

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        form = {
            "model": self._model,
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        }
        if code := language_code(language):
            form["language"] = code
        files = {"file": ("audio.wav", to_wav(audio.pcm), "audio/wav")}
        what = "transcription service"
        response = await post(self._client, "audio/transcriptions", what, data=form, files=files)
        answer = parse(_Answer, response, what)
        await progress(1.0)
        return _transcription(answer)


def _transcription(answer: _Answer) -> Transcription:
    if not answer.words:
        return Transcription(answer.text.strip(), phonemes=tuple(_phonemes(answer.text, 0, 0)))
    words: list[Word] = []
    phonemes: list[Phoneme] = []
    for w in answer.words:
        confidence = 1.0 if w.probability is None else min(max(w.probability, 0.0), 1.0)
        words.append(Word(w.word.strip(), w.start, w.end, confidence))
        phonemes += _phonemes(w.word, w.start, w.end)
    return Transcription(answer.text.strip(), tuple(words), tuple(phonemes))
