"""The alignment as it was before it moved to bounded memory, kept as the oracle, and test inputs.

``full_table_align`` is the former ``speech.scoring.align`` unchanged: the whole
(n + 1) x (m + 1) table of least costs, then the backtrace. The bounded-memory
alignment must choose exactly the same steps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from speech.scoring import Step

#: The opening of *A Tale of Two Cities* (public domain), repeated to make long texts.
DICKENS = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness, it was the "
    "spring of hope, it was the winter of despair, we had everything before us, we had "
    "nothing before us. "
)


def long_text(chars: int) -> str:
    """``chars`` characters of Dickens."""
    return (DICKENS * (chars // len(DICKENS) + 1))[:chars]


def misread(tokens: Sequence[str], seed: int, rate: float = 0.1) -> list[str]:
    """``tokens`` with about ``rate`` of them replaced, dropped or followed by an extra one."""
    rng = random.Random(seed)
    vocabulary = sorted(set(tokens)) or ["ə"]
    out: list[str] = []
    for token in tokens:
        roll = rng.random() * 3 / rate
        if roll < 1:
            out.append(rng.choice(vocabulary))
        elif roll < 2:
            continue
        elif roll < 3:
            out += [token, rng.choice(vocabulary)]
        else:
            out.append(token)
    return out


def _codes(reference: Sequence[str], actual: Sequence[str]) -> tuple[Any, Any]:
    vocabulary: dict[str, int] = {}
    ref = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in reference], dtype=np.int64)
    act = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in actual], dtype=np.int64)
    return ref, act


def _table(ref: Any, act: Any, edit: int) -> Any:
    columns = edit * np.arange(act.size + 1, dtype=np.int64)
    table = np.empty((ref.size + 1, act.size + 1), dtype=np.int64)
    table[0] = columns
    for i in range(1, ref.size + 1):
        best = np.empty(act.size + 1, dtype=np.int64)
        best[0] = edit * i
        diagonal = table[i - 1, :-1] + np.where(act == ref[i - 1], -1, edit)
        best[1:] = np.minimum(diagonal, table[i - 1, 1:] + edit)
        table[i] = np.minimum.accumulate(best - columns) + columns
    return table


def full_table_align(reference: Sequence[str], actual: Sequence[str]) -> list[Step]:
    """The alignment from the whole table, as ``speech.scoring.align`` computed it before."""
    ref, act = _codes(reference, actual)
    edit = min(ref.size, act.size) + 1
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
