"""Embedded evaluating: the reference text aligned to the audio, each expected sound scored.

The reference is normalised as a person reads it (``normalise.py``), each word given
its dictionary pronunciations (``pronounce.py``), aligned to the recording and scored
by goodness of pronunciation (``forced.py``); ``verdicts.py`` turns that into what a
learner sees. Without the audio (a task whose decoded audio was lost) the previous
method runs: the recognised phonemes against the dictionary IPA (``evaluate_text``).

Runs in the engine worker processes, beside decoding and recognition: the work is
seconds of CPU for a long recording, which a cancelled task must be able to stop
(the worker is killed), and the models and dictionary stay loaded in each worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from anyio import CapacityLimiter

from .base import Evaluation, NormalisedAudio, PermanentStageError, Transcription, Word
from .ipa import to_ipa
from .long_reading import align_in_pieces, plan
from .normalise import spoken_words
from .pronounce import pronounce, variants_of
from .scoring import per_word, score
from .texts import TextSource
from .verdicts import ReferenceWord, ilps_mistakes, judge
from .workers import run_in_worker

#: Alignment cells (reference tokens x recognised tokens) beyond which scoring is refused.
MAX_CELLS = 25_000_000


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


#: The longest stretch aligned at once. A longer recording is aligned in pieces cut where
#: the recogniser's words meet the text's (long_reading.py); one with a stretch this long
#: that cannot be cut (the recogniser heard little of the text) is scored by the phone
#: comparison.
MAX_ALIGNED_SECONDS = 45.0


def evaluate_reading(
    pcm: bytes,
    reference_text: str,
    recognised: Sequence[Word] = (),
    phonemes: Sequence[str] | None = None,
    longest_seconds: float = MAX_ALIGNED_SECONDS,
) -> Evaluation | None:
    """Align the text to 16 kHz mono audio and score every sound; None when the text has
    no words (in a worker). ``recognised`` (the recogniser's words, with times) cuts a
    long reading into pieces and names inserted words; ``phonemes`` (the recogniser's
    IPA) are scored by the previous method if the audio cannot be aligned to the text
    (or has a stretch longer than ``longest_seconds`` that cannot be cut)."""
    spoken = spoken_words(reference_text)
    if not spoken:
        return None
    variants, references = [], []
    for word in spoken:
        pronunciations, known = variants_of(word.text)
        variants.append(pronunciations)
        ipa = tuple(t for p in pronunciations[0] if (t := to_ipa(p)))
        references.append(ReferenceWord(word.text, word.written, ipa, known))
    pieces = plan(
        [w.text for w in spoken], recognised, len(pcm) // 2, longest_seconds=longest_seconds
    )
    alignment = None if pieces is None else align_in_pieces(pcm, variants, pieces)
    if alignment is None:
        if phonemes is None:
            raise PermanentStageError("the recording could not be aligned to the reference text")
        return evaluate_text(reference_text, list(phonemes))
    verdicts = judge(references, alignment, recognised)
    mistakes, reference_ipa = ilps_mistakes(verdicts.words)
    return Evaluation(
        accuracy=verdicts.accuracy,
        mistakes=mistakes,
        words=verdicts.words,
        unknown_words=list(dict.fromkeys(r.text for r in references if not r.known)),
        reference_ipa=reference_ipa,
        completeness=verdicts.completeness,
        inserted=verdicts.inserted,
        word_mistakes=verdicts.mistakes,
        method="gop",
    )


class EmbeddedEvaluator:
    """Scores against the task's reference text (or the texts service's text for its
    ``text_id``), in the engine worker processes."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(self, limiter: CapacityLimiter, texts: TextSource | None = None) -> None:
        self._limiter = limiter
        self._texts = texts

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
            return await run_in_worker(
                evaluate_text, text, actual, limiter=self._limiter, what="evaluator"
            )
        return await run_in_worker(
            evaluate_reading, audio.pcm, text, list(transcription.words), actual,
            MAX_ALIGNED_SECONDS, limiter=self._limiter, what="evaluator",
        )  # fmt: skip
