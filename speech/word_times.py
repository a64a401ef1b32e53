"""Word times from the phoneme model: Whisper's words force-aligned to its posteriors.

Whisper's own word times (cross-attention DTW, ``whisper_engine.py``) are coarse. Measured
on the 44 s human reading against pocketsphinx's forced alignment of the passage (an
aligner independent of both): DTW puts 51 % of word boundaries more than 100 ms off
(3.4 % more than 250 ms); the words' dictionary phones aligned to the phoneme model's
frames by the evaluator's CTC Viterbi (``ctc_align.py``), 7 % (none past 250 ms),
median 20-30 ms. A CTC model emits a sound's spike after its onset (the aligned
starts came 80 ms late, the ends on time), so a word starts where the word before it
ended when the two are closer than ``JOINED_SECONDS``, else ``LEAD_SECONDS`` before its
first sound. A word the alignment leaves unread keeps its DTW times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .base import Word
from .ctc_align import Emissions, align
from .lexicon import Entry, entry
from .normalise import spoken_words

JOINED_SECONDS = 0.15
LEAD_SECONDS = 0.05


def _entry(text: str) -> Entry | None:
    """The expected sounds of a written word (several spoken words joined: "1990")."""
    entries = [entry(w.text) for w in spoken_words(text)]
    if not entries:
        return None
    if len(entries) == 1:
        return entries[0]
    joined = tuple(s for e in entries for s in e.variants[0])
    return Entry(text, (joined,), all(e.known for e in entries))


def aligned_words(
    words: Sequence[Word],
    log_probs: NDArray[np.float32],
    vocabulary: Sequence[str],
    frame_seconds: float,
    offset: float,
) -> tuple[Word, ...]:
    """``words`` with the times of their sounds in ``log_probs`` (whose frame 0 is at
    ``offset`` s); words with no sounds to align, or left unread, keep theirs."""
    entries = [_entry(w.text) for w in words]
    present = [i for i, e in enumerate(entries) if e is not None]
    if not present or len(log_probs) == 0:
        return tuple(words)
    alignment = align([e for e in entries if e is not None], Emissions(log_probs, vocabulary))
    timed = list(words)
    previous_end: float | None = None
    for i, aligned in zip(present, alignment.words, strict=True):
        if not aligned.slots:
            continue
        start = offset + aligned.slots[0].start * frame_seconds
        end = offset + aligned.slots[-1].end * frame_seconds
        if previous_end is not None and start - previous_end < JOINED_SECONDS:
            start = previous_end
        else:
            start = max(start - LEAD_SECONDS, offset)
        timed[i] = Word(words[i].text, round(start, 3), round(end, 3), words[i].confidence)
        previous_end = end
    return tuple(timed)
