"""Embedded evaluating: the reference text's dictionary IPA against the recognised phonemes."""

from __future__ import annotations

from uuid import UUID

import anyio.to_thread

from .base import Evaluation, PermanentStageError, Transcription
from .pronounce import pronounce
from .scoring import per_word, score

#: Alignment cells (reference tokens x recognised tokens) beyond which scoring is refused.
MAX_CELLS = 25_000_000


def evaluate_text(reference_text: str, actual: list[str]) -> Evaluation | None:
    """Score ``actual`` IPA tokens against the text; None when the text has no words."""
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
    """Scores against the task's reference text (in a thread: the dictionary and alignment)."""

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return bool(reference_text and reference_text.strip())

    async def evaluate(
        self, transcription: Transcription, reference_text: str | None, text_id: UUID | None
    ) -> Evaluation | None:
        if not self.applies(reference_text, text_id):
            return None
        actual = [p.ipa for p in transcription.phonemes]
        return await anyio.to_thread.run_sync(evaluate_text, reference_text or "", actual)
