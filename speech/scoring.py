"""Pure scoring, as ILPS does it: align reference and actual tokens, count matches, list mistakes.

The alignment has the minimum unit edit cost (Levenshtein); among alignments of
that cost it keeps one with the most matches, so the score does not depend on
tie-breaking (for "a b" against "b a", deleting and inserting "a" around the
matched "b" beats two replacements). The backtrace prefers a match or
replacement, then a deletion, then an insertion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

StepKind = Literal["Match", "Replacement", "Insertion", "Deletion"]


@dataclass(frozen=True)
class Step:
    """One column of the alignment; ``ref``/``act`` index the token lists (None: a gap)."""

    kind: StepKind
    ref: int | None
    act: int | None


@dataclass(frozen=True)
class Score:
    accuracy: float
    matches: int
    mistakes: list[dict[str, Any]]
    steps: list[Step]


def _codes(reference: Sequence[str], actual: Sequence[str]) -> tuple[Any, Any]:
    vocabulary: dict[str, int] = {}
    ref = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in reference], dtype=np.int64)
    act = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in actual], dtype=np.int64)
    return ref, act


def _table(ref: Any, act: Any, edit: int) -> Any:
    """``table[i, j]``: least ``edit * edits - matches`` aligning ``ref[:i]`` with ``act[:j]``."""
    columns = edit * np.arange(act.size + 1, dtype=np.int64)
    table = np.empty((ref.size + 1, act.size + 1), dtype=np.int64)
    table[0] = columns
    for i in range(1, ref.size + 1):
        best = np.empty(act.size + 1, dtype=np.int64)
        best[0] = edit * i
        diagonal = table[i - 1, :-1] + np.where(act == ref[i - 1], -1, edit)
        best[1:] = np.minimum(diagonal, table[i - 1, 1:] + edit)
        # Insertions within the row: table[i, j] = min over k <= j of best[k] + edit * (j - k).
        table[i] = np.minimum.accumulate(best - columns) + columns
    return table


def align(reference: Sequence[str], actual: Sequence[str]) -> list[Step]:
    """A minimum-cost alignment with the most matches, from first token to last."""
    ref, act = _codes(reference, actual)
    edit = min(ref.size, act.size) + 1  # one edit outweighs every possible match
    table = _table(ref, act, edit)
    steps: list[Step] = []
    i, j = ref.size, act.size
    while i or j:
        here = int(table[i, j])
        if i and j:
            same = bool(ref[i - 1] == act[j - 1])
            if here == table[i - 1, j - 1] + (-1 if same else edit):
                i, j = i - 1, j - 1
                steps.append(Step("Match" if same else "Replacement", i, j))
                continue
        if i and here == table[i - 1, j] + edit:
            i -= 1
            steps.append(Step("Deletion", i, None))
        else:
            j -= 1
            steps.append(Step("Insertion", None, j))
    return steps[::-1]


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
