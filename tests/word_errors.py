"""Word error counting for transcripts: the tests' and the benchmarks' one definition."""

from __future__ import annotations

import re
from collections.abc import Sequence


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation, as a word error rate compares them."""
    return re.findall(r"[a-z']+", text.lower())


def word_errors(reference: Sequence[str], heard: Sequence[str]) -> int:
    """The edit distance between two sequences of words or sounds (substitutions,
    insertions, deletions)."""
    row = list(range(len(heard) + 1))
    for i, said in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, word in enumerate(heard, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (said != word))
    return row[-1]
