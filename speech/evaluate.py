"""Embedded evaluating: the reference text aligned to the phoneme model's frames, each
expected sound scored.

The reference is normalised as a person reads it (``normalise.py``), each word given
its expected sounds in the model's symbols (``lexicon.py``), force-aligned to the CTC
phoneme model's posteriors (``phone_model.py``, ``ctc_align.py``; the transcribing
stage's when the transcription carries them, else computed here; a long reading in
pieces, ``long_reading.py``), each sound measured by its goodness of pronunciation
(``gop.py``), the transcriber's words set against the text (``transcript_match.py``),
and ``verdicts.py`` turns that into what a learner sees. Without the audio (a task whose
decoded audio was lost) the previous method runs: the recognised phonemes against the
dictionary IPA (``evaluate_text``).

Runs in the engine worker processes, beside decoding and recognition: the work is
seconds of CPU for a long recording, which a cancelled task must be able to stop
(the worker is killed), and the model and dictionary stay loaded in each worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from anyio import CapacityLimiter

from .base import (
    Evaluation,
    NormalisedAudio,
    PermanentStageError,
    Posteriors,
    Transcription,
    Word,
)
from .ctc_align import CtcAlignment, Emissions, align
from .lexicon import Entry, entry
from .long_reading import Piece, align_in_pieces, plan
from .normalise import spoken_words
from .phone_model import FRAME_SAMPLES, FRAME_SECONDS, phone_model, samples_of
from .pronounce import pronounce
from .scoring import per_word, score
from .texts import TextSource
from .transcript_match import Match, match
from .verdicts import ReferenceWord, ilps_mistakes, judge
from .workers import Runner, run_in_worker

#: Alignment cells (reference tokens x recognised tokens) beyond which scoring is refused.
MAX_CELLS = 25_000_000
#: Viterbi cells (frames x sounds of the text) aligned at once; past this a reading is
#: aligned in pieces (long_reading.py), and without a usable plan, only as much of the
#: text as the recording could hold is aligned.
MAX_VITERBI_CELLS = 8_000_000
#: A reader says at most this many words a second.
WORDS_PER_SECOND = 5.0
METHOD = "ctc-gop"


def evaluate_text(reference_text: str, actual: list[str]) -> Evaluation | None:
    """The previous method: ``actual`` IPA tokens against the text's dictionary IPA, as
    ILPS scores; None when the text has no words (in a worker)."""
    words = pronounce(reference_text)
    reference = [t for w in words for t in w.ipa]
    if not reference:
        return None
    if len(reference) * len(actual) > MAX_CELLS:
        raise PermanentStageError("the reference text and the recording are too long to compare")
    result = score(reference, actual)
    return Evaluation(
        accuracy=result.accuracy,
        mistakes=result.mistakes,
        words=per_word([(w.word, w.ipa) for w in words], result.steps),
        unknown_words=list(dict.fromkeys(w.word for w in words if not w.known)),
        reference_ipa=" ".join(reference),
        method="phonemes",
    )


def _cells(words: Sequence[Entry], frames: int) -> int:
    return frames * sum(2 * len(v) + 2 for w in words for v in w.variants)


def _aligned(words: list[Entry], emissions: Emissions, found: Match) -> CtcAlignment:
    """The whole reading aligned at once, or in pieces when that would be too big."""
    frames = len(emissions.blank)
    if _cells(words, frames) <= MAX_VITERBI_CELLS:
        return align(words, emissions, found.read)
    samples = frames * FRAME_SAMPLES
    pieces = plan([w.word for w in words], found.heard, samples)
    if pieces is None or any(
        _cells(words[p.first : p.last], (p.end - p.start) // FRAME_SAMPLES) > 4 * MAX_VITERBI_CELLS
        for p in pieces
    ):
        # No usable cut: the words the recording could hold, the rest unread.
        readable = max(int(frames * FRAME_SECONDS * WORDS_PER_SECOND), 1)
        pieces = [Piece(0, min(readable, len(words)), 0, samples)]
    return align_in_pieces(words, emissions, pieces, found.read)


def evaluate_reading(
    pcm: bytes,
    reference_text: str,
    recognised: Sequence[Word] = (),
    phonemes: Sequence[str] | None = None,
    posteriors: Posteriors | None = None,
) -> Evaluation | None:
    """Align the text to 16 kHz mono audio and score every sound; None when the text has
    no words (in a worker). ``recognised`` (the transcriber's words, with times) names
    replaced and inserted words, tells a reading of another text, and cuts a long
    reading into pieces; ``phonemes`` (the recognised IPA) are scored by the previous
    method when the recording is too short to align. ``posteriors`` (the transcribing
    stage's, of this audio) spare running the phoneme model again when they are what it
    would compute."""
    spoken = spoken_words(reference_text)
    if not spoken:
        return None
    references = [ReferenceWord(w.text, w.written, entry(w.text)) for w in spoken]
    model = phone_model()
    samples = samples_of(pcm)
    log_probs = model.usable(posteriors, len(samples))
    if log_probs is None:
        log_probs = model.posteriors(samples)
    if len(log_probs) < 2:
        if phonemes is None:
            raise PermanentStageError("the recording is too short to be scored")
        return evaluate_text(reference_text, list(phonemes))
    emissions = Emissions(log_probs, model.vocabulary)
    heard = model.decode(log_probs)
    found = match([w.text for w in spoken], recognised)
    alignment = _aligned([r.entry for r in references], emissions, found)
    said = {i: [entry(found.heard[j].text) for j in js] for i, js in found.replaced.items()}
    verdicts = judge(references, alignment, emissions, heard, found, said, bool(recognised))
    mistakes, reference_ipa = ilps_mistakes(verdicts.words)
    return Evaluation(
        accuracy=verdicts.accuracy,
        mistakes=mistakes,
        words=verdicts.words,
        unknown_words=list(dict.fromkeys(r.text for r in references if not r.entry.known)),
        reference_ipa=reference_ipa,
        completeness=verdicts.completeness,
        inserted=verdicts.inserted,
        word_mistakes=verdicts.mistakes,
        method=METHOD,
        other_text=verdicts.other_text,
    )


class EmbeddedEvaluator:
    """Scores against the task's reference text (or the texts service's text for its
    ``text_id``), in the engine worker processes (``run``), on the transcription's
    posteriors when it carries them."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(
        self,
        limiter: CapacityLimiter,
        texts: TextSource | None = None,
        run: Runner = run_in_worker,
    ) -> None:
        self._limiter = limiter
        self._texts = texts
        self._run = run

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        if reference_text and reference_text.strip():
            return True
        return self._texts is not None and text_id is not None

    async def evaluate(
        self,
        transcription: Transcription,
        reference_text: str | None,
        text_id: UUID | None,
        audio: NormalisedAudio | None = None,
    ) -> Evaluation | None:
        if not self.applies(reference_text, text_id):
            return None
        text = reference_text or ""
        if not text.strip() and self._texts is not None and text_id is not None:
            text = await self._texts.text(text_id)
        actual = [p.ipa for p in transcription.phonemes]
        if audio is None:
            return await self._run(
                evaluate_text, text, actual, limiter=self._limiter, what="evaluator"
            )
        return await self._run(
            evaluate_reading, audio.pcm, text, list(transcription.words), actual,
            transcription.posteriors, limiter=self._limiter, what="evaluator",
        )  # fmt: skip
