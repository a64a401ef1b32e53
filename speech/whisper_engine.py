"""Whisper (faster-whisper, CTranslate2) in an engine worker process: one window at a time.

The model is loaded once per worker and per configuration. The caller walks the
recording window by window as Whisper's own loop does (each window starts where the
last complete segment of the one before ended, with its tokens as the prompt), so that
it can report progress after each. Word times are found
after decoding, never during it: faster-whisper's ``word_timestamps=True`` moves the
next 30 s window to the last word's aligned end, and on the 44 s human reading at
beam 5 that skipped a whole clause (6 of 119 words). Here the text is decoded with
the timestamp tokens alone, then each window's fixed tokens are aligned to the
window's own encoder output with CTranslate2's cross-attention DTW
(``Whisper.align``, what faster-whisper does inside): the alignment cannot move a
window, so it cannot cost a word. These DTW times are coarse; ``word_times.py``
replaces them with the phoneme model's and keeps them only where that fails.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import SAMPLE_RATE, Segment, Word
from .whisper_model import WhisperConfig

#: Whisper's mel frames are 10 ms; a window holds 3,000 of them (30 s).
HOP_SAMPLES = 160
WINDOW_FRAMES = 3000
#: Whisper forgets the text before after a window it could only decode this hot.
PROMPT_RESET_TEMPERATURE = 0.5
#: The most tokens of the text before that Whisper's prompt holds (n_text_ctx / 2 - 1).
PROMPT_TOKENS = 223


@dataclass(frozen=True)
class WindowText:
    """What Whisper heard in one window of audio, with absolute times."""

    segments: tuple[Segment, ...]
    words: tuple[Word, ...]
    #: Where the next window starts (samples into the window): the end of its last
    #: complete segment, as Whisper's own loop seeks; the whole window when it is the
    #: last or held no segment.
    consumed: int
    #: The segments' tokens, timestamps included: the next window's prompt, as Whisper
    #: conditions on the text before. Empty when Whisper would reset its prompt (a
    #: window decoded only at a high temperature).
    tokens: tuple[int, ...]
    #: The language decoded (detected, when none was given).
    language: str


class _FirstWindowDone(Exception):
    """Raised to stop faster-whisper before it encodes a second window."""


def _model_class() -> Any:
    from faster_whisper import WhisperModel

    class RememberingWhisper(WhisperModel):  # type: ignore[misc]
        """faster-whisper's model, keeping the encoder output of the window in decoding,
        and able to stop after a given number of encodings.

        faster-whisper yields a window's segments before it encodes the next window,
        so while a segment is in hand, ``encoded`` is its own window's encoder output.
        """

        encoded: Any = None
        #: Encodings allowed before ``_FirstWindowDone`` (None: no limit).
        encodings_left: int | None = None

        def encode(self, features: Any) -> Any:
            if self.encodings_left is not None:
                if self.encodings_left == 0:
                    raise _FirstWindowDone
                self.encodings_left -= 1
            self.encoded = super().encode(features)
            return self.encoded

    return RememberingWhisper


@functools.cache
def load(config: WhisperConfig) -> Any:
    """The worker's model for ``config``, loaded on first use (one CPU thread: the
    service's parallelism is its worker processes)."""
    return _model_class()(
        config.model, device=config.device, compute_type=config.compute_type,
        cpu_threads=1, num_workers=1,
    )  # fmt: skip


def _aligned_words(
    model: Any, tokenizer: Any, window: list[Any], encoded: Any, frames: int
) -> list[dict[str, Any]]:
    """Words of one window's segments, times relative to the window, punctuation attached."""
    from faster_whisper.transcribe import merge_punctuations

    tokens = [t for segment in window for t in segment.tokens if t < tokenizer.eot]
    if not tokens:
        return []
    (alignment,) = model.find_alignment(tokenizer, [tokens], encoded, frames)
    merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    return [w for w in alignment if w["word"].strip()]


def _window_words(
    model: Any, tokenizer: Any, window: list[Any], encoded: Any, total_frames: int, start: float
) -> list[Word]:
    seek: int = window[0].seek
    frames = min(WINDOW_FRAMES, total_frames - seek)
    offset = start + seek * HOP_SAMPLES / SAMPLE_RATE
    words = []
    for w in _aligned_words(model, tokenizer, window, encoded, frames):
        start, end = offset + float(w["start"]), offset + float(w["end"])
        words.append(Word(w["word"].strip(), start, end, round(float(w["probability"]), 4)))
    return words


def _windows(segments: list[tuple[Any, Any]]) -> list[tuple[list[Any], Any]]:
    """Segments grouped by the window they were decoded in, with its encoder output."""
    windows: list[tuple[list[Any], Any]] = []
    for segment, encoded in segments:
        if windows and windows[-1][0][0].seek == segment.seek:
            windows[-1][0].append(segment)
        else:
            windows.append(([segment], encoded))
    return windows


def tidy(words: list[Word], offset: float, end: float) -> tuple[Word, ...]:
    """Times inside the window, in order, each word at least 10 ms long (DTW may give a
    word no frame of its own), rounded to milliseconds."""
    tidy: list[Word] = []
    floor = offset
    for w in words:
        start = min(max(w.start, floor), end - 0.01)
        stop = min(max(w.end, start + 0.01), end)
        tidy.append(Word(w.text, round(start, 3), round(stop, 3), w.confidence))
        floor = start
    return tuple(tidy)


def _decode(
    model: Any,
    samples: NDArray[np.float32],
    config: WhisperConfig,
    language: str | None,
    prompt: list[int] | None,
    first_window_only: bool,
) -> tuple[list[tuple[Any, Any]], Any]:
    """The segments of the first window (or of all), each with its window's encoding."""
    # Language detection encodes once more, before the first window.
    model.encodings_left = (1 if language else 2) if first_window_only else None
    decoded, info = model.transcribe(
        samples, language=language, beam_size=config.beam_size, initial_prompt=prompt or None,
        word_timestamps=False, vad_filter=False,
    )  # fmt: skip
    segments: list[tuple[Any, Any]] = []
    try:
        for segment in decoded:
            segments.append((segment, model.encoded))
    except _FirstWindowDone:
        pass
    finally:
        model.encodings_left = None
    return segments, info


def transcribe_window(
    samples: NDArray[np.float32],
    offset: float,
    config: WhisperConfig,
    language: str | None,
    prompt: list[int] | None,
    last: bool,
) -> WindowText:
    """One window (at most 30 s) of 16 kHz mono audio starting at ``offset`` s.

    ``language`` None detects it (multilingual models); ``prompt`` holds the tokens of
    the text before. Unless it is the ``last`` window of the recording, only Whisper's
    first window is decoded: the unfinished segment at its end is decoded again, whole,
    at the start of the next window, as Whisper's own loop does.
    """
    from faster_whisper.tokenizer import Tokenizer

    model = load(config)
    with_encodings, info = _decode(model, samples, config, language, prompt, not last)
    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=info.language
    )
    consumed = len(samples)
    if with_encodings and not last:
        consumed = min(round(with_encodings[-1][0].end * SAMPLE_RATE), len(samples))
        # Whisper's loop moves on by at least what it decoded; never stand still.
        consumed = max(consumed, SAMPLE_RATE)
    end = offset + consumed / SAMPLE_RATE
    words: list[Word] = []
    for window, encoded in _windows(with_encodings):
        words += _window_words(
            model, tokenizer, window, encoded, len(samples) // HOP_SAMPLES, offset
        )
    segments = tuple(
        Segment(s.text.strip(), round(offset + s.start, 3), round(min(offset + s.end, end), 3))
        for s, _ in with_encodings
    )
    reset = any(s.temperature > PROMPT_RESET_TEMPERATURE for s, _ in with_encodings)
    tokens = () if reset else tuple(t for s, _ in with_encodings for t in s.tokens)
    return WindowText(segments, tidy(words, offset, end), consumed, tokens, info.language)
