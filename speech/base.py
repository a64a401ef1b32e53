"""The contract between a task actor and the speech stages it runs.

The actor owns timeouts, retries and persistence; a stage only does its work
and says, by the exception it raises, whether trying again could help.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import numpy as np
from numpy.typing import NDArray

#: Called by a stage with the fraction of audio done (0.0..1.0) on long inputs.
ProgressCallback = Callable[[float], Awaitable[None]]

#: Normalised audio is signed 16-bit little-endian, mono, at this rate.
SAMPLE_RATE = 16_000


class StageError(Exception):
    """A stage could not do its work; ``reason`` is for a person to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentStageError(StageError):
    """Trying again cannot help (unreadable audio, a 4xx from a remote engine)."""


class TransientStageError(StageError):
    """Trying again may help (a crashed worker, a timeout, a 5xx, a refused connection)."""


@dataclass(frozen=True)
class AudioInput:
    """The upload as the client sent it."""

    data: bytes
    content_type: str
    filename: str
    #: Overrides for headerless PCM (the ILPS Android app sends 44,100 Hz stereo s16le).
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class NormalisedAudio:
    """16 kHz mono s16le PCM, kept so that a retry of a later stage does not decode again."""

    pcm: bytes
    duration: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Phoneme:
    ipa: str
    start: float
    end: float
    #: The index in the transcription's ``words`` of the word it falls in (None: between).
    word: int | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of the transcript as the transcriber wrote it (a phrase, a sentence)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Posteriors:
    """The phoneme model's log-posteriors over a whole recording, as the transcribing stage
    computed them, handed to the evaluating stage in memory so that the network runs once
    a task. Never stored (about 38 KB per audio second): a resumed task computes them again.
    """

    #: Frames x the model's classes, float32; frame ``k`` is centred on ``k * frame_seconds``.
    log_probs: NDArray[np.float32]
    frame_seconds: float
    #: The model and how the audio was cut for it (``phone_model.WINDOWING``): posteriors
    #: made any other way are not used, so that sharing them never changes a score.
    windowing: str


@dataclass(frozen=True)
class Transcription:
    """What was said: words with times, phonemes (IPA) with times, segments with times."""

    transcript: str
    words: tuple[Word, ...] = ()
    phonemes: tuple[Phoneme, ...] = ()
    #: Empty from engines that give none (the remote ones may not).
    segments: tuple[Segment, ...] = ()
    #: The language the transcriber detected, when the task asked it to (``auto``).
    detected_language: str | None = None
    #: The embedded transcriber's posteriors, for the evaluating stage; None from other
    #: engines and from a stored transcription. Not part of what was said: left out of
    #: comparisons, and the journal stores only the fields above.
    posteriors: Posteriors | None = field(default=None, compare=False, repr=False)

    @property
    def ipa(self) -> str:
        """IPA tokens separated by spaces, as ILPS stores a task's ``result``."""
        return " ".join(p.ipa for p in self.phonemes)


@dataclass(frozen=True)
class Evaluation:
    """Pronunciation score against the reference, in the ILPS shapes and per word."""

    #: 0..100, rounded to 2 decimals.
    accuracy: float
    #: ILPS mistakes: ``{"reference": {...}|None, "actual": {...}|None, "type": ...}``.
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    #: One entry per reference word, for a screen to colour.
    words: list[dict[str, Any]] = field(default_factory=list)
    #: Reference words the pronouncing dictionary lacked (a fallback was used).
    unknown_words: list[str] = field(default_factory=list)
    reference_ipa: str = ""
    #: 0..100: the share of the reference's words that were read (None: not measured).
    completeness: float | None = None
    #: Words heard that the reference does not have: ``{word, start, end, heard}``.
    inserted: list[dict[str, Any]] = field(default_factory=list)
    #: For a learner: ``{word, index, start, end, type, expected, heard}``, in time order.
    word_mistakes: list[dict[str, Any]] = field(default_factory=list)
    #: How it was scored: ``"gop"`` (forced alignment), ``"phonemes"``, ``"remote"``.
    method: str = ""
    #: The recording is a reading of another text: every word missed, completeness 0.
    other_text: bool = False


class Preprocessor(Protocol):
    async def preprocess(self, audio: AudioInput) -> NormalisedAudio:
        """Decode any supported upload to 16 kHz mono s16le and measure it."""
        ...


class Transcriber(Protocol):
    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        """Recognise words and phonemes in normalised audio."""
        ...


class Evaluator(Protocol):
    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        """Whether a task with these references has an evaluating stage at all."""
        ...

    async def evaluate(
        self,
        transcription: Transcription,
        reference_text: str | None,
        text_id: UUID | None,
        audio: NormalisedAudio | None = None,
    ) -> Evaluation | None:
        """Score against the reference; None when there is nothing to score against.

        ``audio`` is the recording the transcription came from; an engine that aligns
        the reference to the sound needs it, others ignore it.
        """
        ...


@dataclass(frozen=True)
class Pipeline:
    """The three stages a task actor runs, in order."""

    preprocessor: Preprocessor
    transcriber: Transcriber
    evaluator: Evaluator
    #: Closes pooled clients and worker processes.
    aclose: Callable[[], Awaitable[None]] | None = None
