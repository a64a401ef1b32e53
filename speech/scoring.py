"""Pure scoring, as ILPS does it: align reference and actual tokens, count matches, list mistakes.

The alignment (``alignment.py``) has the minimum unit edit cost (Levenshtein);
among alignments of that cost it keeps one with the most matches, so the score
does not depend on tie-breaking (for "a b" against "b a", deleting and inserting
"a" around the matched "b" beats two replacements). The backtrace prefers a match
or replacement, then a deletion, then an insertion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .alignment import Step, StepKind, align

__all__ = ["Score", "Step", "StepKind", "accuracy", "align", "per_word", "score"]


@dataclass(frozen=True)
class Score:
    accuracy: float
    matches: int
    mistakes: list[dict[str, Any]]
    steps: list[Step]


def accuracy(matches: int, n_reference: int, n_actual: int) -> float:
    """The ILPS formula; an empty reference scores 100 against nothing and 0 against anything."""
    if n_reference == 0:
        return 100.0 if n_actual == 0 else 0.0
    r, a = n_reference, n_actual
    return round(matches / (r * (1 + abs(r - a) / r)) * 100, 2)


def _token(tokens: Sequence[str], position: int | None) -> dict[str, Any] | None:
    return None if position is None else {"position": position, "value": tokens[position]}


def score(reference: Sequence[str], actual: Sequence[str]) -> Score:
    """Accuracy and mistakes in the ILPS JSON shape."""
    steps = align(reference, actual)
    mistakes = [
        {"reference": _token(reference, s.ref), "actual": _token(actual, s.act), "type": s.kind}
        for s in steps
        if s.kind != "Match"
    ]
    matches = sum(s.kind == "Match" for s in steps)
    return Score(accuracy(matches, len(reference), len(actual)), matches, mistakes, steps)


def per_word(
    words: Sequence[tuple[str, Sequence[str]]], steps: Sequence[Step]
) -> list[dict[str, Any]]:
    """For each reference word: its IPA and how many of its sounds were mistaken.

    A replaced or deleted token counts against its word; an insertion counts only
    when it falls between two tokens of the same word (at a boundary it has no owner).
    """
    owner = [w for w, (_, ipa) in enumerate(words) for _ in ipa]
    counts = [0] * len(words)
    last: int | None = None
    pending = 0
    for step in steps:
        if step.ref is None:
            pending += 1
            continue
        if last is not None and owner[last] == owner[step.ref]:
            counts[owner[step.ref]] += pending
        pending, last = 0, step.ref
        counts[owner[step.ref]] += step.kind != "Match"
    return [
        {"word": w, "position": i, "ipa": " ".join(ipa), "mistakes": n, "correct": n == 0}
        for i, ((w, ipa), n) in enumerate(zip(words, counts, strict=True))
    ]
