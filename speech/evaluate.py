"""Embedded evaluating: the reference text's dictionary IPA against the recognised phonemes.

Runs in the engine worker processes, beside decoding and recognition: a long
text costs seconds of CPU, which a cancelled task must be able to stop (the
worker is killed), and the dictionary stays loaded in each worker.
"""

from __future__ import annotations

from uuid import UUID

from anyio import CapacityLimiter

from .base import Evaluation, PermanentStageError, Transcription
from .pronounce import pronounce
from .scoring import per_word, score
from .workers import run_in_worker

#: Alignment cells (reference tokens x recognised tokens) beyond which scoring is refused.
MAX_CELLS = 25_000_000


def evaluate_text(reference_text: str, actual: list[str]) -> Evaluation | None:
    """Score ``actual`` IPA tokens against the text; None when it has no words (in a worker)."""
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
    )


class EmbeddedEvaluator:
    """Scores against the task's reference text, in the engine worker processes."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return bool(reference_text and reference_text.strip())

    async def evaluate(
        self, transcription: Transcription, reference_text: str | None, text_id: UUID | None
    ) -> Evaluation | None:
        if not self.applies(reference_text, text_id):
            return None
        actual = [p.ipa for p in transcription.phonemes]
        return await run_in_worker(
            evaluate_text, reference_text or "", actual, limiter=self._limiter, what="evaluator"
        )
