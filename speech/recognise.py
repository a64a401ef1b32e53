"""Embedded transcribing: pocketsphinx's en-US models, shipped in its wheel, in worker processes.

Words come from the n-gram decoder, phonemes from a phone-loop decoder (no
words involved, so a mispronunciation shows). Long audio is decoded in pieces
cut at quiet points; times stay absolute.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from anyio import CapacityLimiter
from pocketsphinx import Decoder, get_model_path

from .base import (
    SAMPLE_RATE,
    NormalisedAudio,
    PermanentStageError,
    Phoneme,
    ProgressCallback,
    Transcription,
    Word,
)
from .ipa import to_ipa
from .languages import Languages
from .workers import run_in_worker

LANGUAGES = frozenset({"en-us", "en", "english"})
#: pocketsphinx frames are 10 ms.
FRAME_SECONDS = 0.01
#: Phone-loop language weight: higher favours likely phone sequences over the acoustics.
PHONE_LW = 2.0

#: Loaded once per worker process and reused by every task it serves.
_decoders: tuple[Any, Any] | None = None


def supports(language: str) -> bool:
    """Whether the embedded models cover ``language`` (en-US, with "en" and "english" aliases)."""
    return language.strip().lower().replace("_", "-") in LANGUAGES


SUPPORTED = Languages(supports, "en-US (also written en or english)", "the embedded recogniser")


def _load() -> tuple[Any, Any]:
    global _decoders
    if _decoders is None:
        phone_lm = os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin")
        words = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        phones = Decoder(
            samprate=SAMPLE_RATE, lm=None, allphone=phone_lm,
            beam=1e-20, pbeam=1e-20, lw=PHONE_LW, loglevel="FATAL",
        )  # fmt: skip
        _decoders = (words, phones)
    return _decoders


def _segments(decoder: Any, pcm: bytes) -> list[Any]:
    # Noise and cepstral-mean estimates otherwise carry over from the previous audio,
    # and a task's result would depend on what its worker decoded before.
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return list(decoder.seg())


def _times(seg: Any, offset: float) -> tuple[float, float]:
    start = offset + seg.start_frame * FRAME_SECONDS
    return round(start, 3), round(offset + (seg.end_frame + 1) * FRAME_SECONDS, 3)


def _word(seg: Any, offset: float) -> Word | None:
    text: str = seg.word
    if text.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], ++fillers++
        return None
    start, end = _times(seg, offset)
    confidence = round(min(max(float(seg.prob), 0.0), 1.0), 4)
    return Word(text.split("(", 1)[0], start, end, confidence)


def _phoneme(seg: Any, offset: float) -> Phoneme | None:
    ipa = to_ipa(seg.word)
    return None if ipa is None else Phoneme(ipa, *_times(seg, offset))


def recognise_segment(pcm: bytes, offset: float) -> tuple[list[Word], list[Phoneme]]:
    """Words and phonemes of one piece of 16 kHz mono audio (runs in a worker process)."""
    word_decoder, phone_decoder = _load()
    words = [w for s in _segments(word_decoder, pcm) if (w := _word(s, offset))]
    phones = [p for s in _segments(phone_decoder, pcm) if (p := _phoneme(s, offset))]
    return words, phones


def split_points(samples: np.ndarray[Any, Any], length: int) -> list[tuple[int, int]]:
    """Pieces of about ``length`` samples, each cut at the quietest 10 ms of its last fifth."""
    frame = SAMPLE_RATE // 100
    bounds: list[tuple[int, int]] = []
    start = 0
    while samples.size - start > length:
        lo = start + length * 4 // 5
        window = samples[lo : start + length].astype(np.float64)
        energy = (window[: window.size // frame * frame] ** 2).reshape(-1, frame).sum(axis=1)
        cut = lo + int(energy.argmin()) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, samples.size))
    return bounds


class EmbeddedTranscriber:
    """pocketsphinx in worker processes; a killed worker is a transient error."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(self, limiter: CapacityLimiter, segment_seconds: float = 30.0) -> None:
        self._limiter = limiter
        self._segment = int(segment_seconds * SAMPLE_RATE)

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        if not supports(language):
            raise PermanentStageError(
                f"language {language} is not supported by the embedded recogniser"
            )
        samples = np.frombuffer(audio.pcm, dtype="<i2")
        words: list[Word] = []
        phones: list[Phoneme] = []
        for start, end in split_points(samples, self._segment):
            piece = audio.pcm[2 * start : 2 * end]
            more_words, more_phones = await run_in_worker(
                recognise_segment, piece, start / SAMPLE_RATE,
                limiter=self._limiter, what="recogniser",
            )  # fmt: skip
            words += more_words
            phones += more_phones
            await progress(end / max(samples.size, 1))
        return Transcription(" ".join(w.text for w in words), tuple(words), tuple(phones))
