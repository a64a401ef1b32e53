"""The alignment behind scoring, in bounded memory: the least-cost table is never held whole.

``table[i, j]`` is the least ``edit * edits - matches`` aligning ``ref[:i]`` with
``act[:j]``; the backtrace from the last cell prefers a match or replacement, then
a deletion, then an insertion. Only a few rows of the table (checkpoints) are kept
while it is computed; the backtrace then recomputes one stretch of rows at a time
from the checkpoint above it, holding at most about ``BLOCK_CELLS`` values. The
values, and so the chosen steps, are exactly those of the whole table: only the
memory changes (from 8 bytes per cell to a constant). Rows are computed about twice,
yet without a big table's page faults it is no slower (``bench/evaluate_memory.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

StepKind = Literal["Match", "Replacement", "Insertion", "Deletion"]

#: Table values held at once in one stretch of rows (8 MiB), and in one set of checkpoints.
BLOCK_CELLS = 1 << 20


@dataclass(frozen=True)
class Step:
    """One column of the alignment; ``ref``/``act`` index the token lists (None: a gap)."""

    kind: StepKind
    ref: int | None
    act: int | None


class _Table:
    """The rows of the least-cost table, computed on demand from the row above."""

    def __init__(self, reference: Sequence[str], actual: Sequence[str]) -> None:
        vocabulary: dict[str, int] = {}
        self.ref = np.array(
            [vocabulary.setdefault(t, len(vocabulary)) for t in reference], np.int64
        )
        self.act = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in actual], np.int64)
        self.edit = min(self.ref.size, self.act.size) + 1  # one edit outweighs every match
        self.columns = self.edit * np.arange(self.act.size + 1, dtype=np.int64)

    def row(self, above: Any, i: int) -> Any:
        """Row ``i`` over the first ``above.size`` columns, from row ``i - 1`` over the same."""
        width = above.size
        best = np.empty(width, dtype=np.int64)
        best[0] = self.edit * i
        diagonal = above[:-1] + np.where(self.act[: width - 1] == self.ref[i - 1], -1, self.edit)
        np.minimum(diagonal, above[1:] + self.edit, out=best[1:])
        # Insertions within the row: row[j] = min over k <= j of best[k] + edit * (j - k).
        columns = self.columns[:width]
        return np.minimum.accumulate(best - columns) + columns

    def rows(self, top: int, first: Any, bottom: int) -> Any:
        """Rows ``top..bottom`` as one array, from row ``top`` (``first``)."""
        block = np.empty((bottom - top + 1, first.size), dtype=np.int64)
        block[0] = first
        for k in range(1, bottom - top + 1):
            block[k] = self.row(block[k - 1], top + k)
        return block


def _walk(table: _Table, top: int, first: Any, bottom: int, j: int, steps: list[Step]) -> int:
    """The backtrace from ``(bottom, j)`` up to row ``top``, in one block; its column there."""
    block = table.rows(top, first[: j + 1], bottom)
    ref, act, edit = table.ref, table.act, table.edit
    i = bottom
    while i > top:
        k = i - top
        here = block.item(k, j)
        if j:
            same = bool(ref[i - 1] == act[j - 1])
            if here == block.item(k - 1, j - 1) + (-1 if same else edit):
                i, j = i - 1, j - 1
                steps.append(Step("Match" if same else "Replacement", i, j))
                continue
        if here == block.item(k - 1, j) + edit:
            i -= 1
            steps.append(Step("Deletion", i, None))
        else:
            j -= 1
            steps.append(Step("Insertion", None, j))
    return j


def _trace(
    table: _Table, top: int, first: Any, bottom: int, j: int, steps: list[Step], block: int
) -> int:
    """The backtrace from ``(bottom, j)`` up to row ``top`` (values ``first``); its column there.

    Rows ``top..bottom`` that do not fit in ``block`` cells are cut into stretches at
    checkpoint rows (as many as fit in ``block`` cells too), traced from the last up.
    """
    width, height = j + 1, bottom - top
    if height <= 1 or height * width <= block:
        return _walk(table, top, first, bottom, j, steps)
    parts = min(height, max(2, block // width), -(-height * width // block))
    bounds = [top + height * p // parts for p in range(parts + 1)]
    checkpoints = [first[:width]]
    for p in range(1, parts):
        row = checkpoints[-1]
        for i in range(bounds[p - 1] + 1, bounds[p] + 1):
            row = table.row(row, i)
        checkpoints.append(row)
    for p in reversed(range(parts)):
        # The path only moves left going up: the stretches above need no columns past j.
        j = _trace(table, bounds[p], checkpoints[p], bounds[p + 1], j, steps, block)
        checkpoints.pop()
    return j


def align(
    reference: Sequence[str], actual: Sequence[str], *, block_cells: int = BLOCK_CELLS
) -> list[Step]:
    """A minimum-cost alignment with the most matches, from first token to last."""
    table = _Table(reference, actual)
    steps: list[Step] = []
    j = _trace(table, 0, table.columns, table.ref.size, table.act.size, steps, max(block_cells, 1))
    steps += [Step("Insertion", None, k) for k in reversed(range(j))]
    return steps[::-1]
