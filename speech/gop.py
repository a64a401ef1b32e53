"""Goodness of pronunciation of each aligned slot, from the phoneme model's posteriors (pure).

Self-aligned GOP for a CTC model ("Segmentation-free Goodness of Pronunciation",
Cao et al. 2025: the CTC path of the canonical phones gives each its frames), with the
competitors restricted to the common learner substitutions of ``confusions.py``
("Enhancing GOP in CTC-Based Mispronunciation Detection with Phonological Knowledge",
Parikh et al. 2025: restricted substitutions beat unrestricted ones and cost less).
A CTC model's output is peaky (a sound is one or two frames of high posterior among
blanks), so a slot is measured on its **best frame** in its window (from the end of the
slot before it to the start of the slot after it), not averaged over frames:

* ``expected``: the best log-posterior of the symbols the slot accepts;
* ``substitute``: the best log-posterior of its learner substitutes (θ→s, ð→d, ...);
* the slot is **heard differently** when the substitute beats the expected sound by
  ``SUBSTITUTE_MARGIN``, or when the expected sound is **absent** (below ``ABSENT``:
  a dropped sound, or one the model does not hear as this sound at all).

``margin`` is how far the slot is from being flagged, in nats (negative: flagged), and
its score maps it to 0..100 with 50 at the flag: one number behind both the verdict and
the score, so they cannot disagree. The thresholds are calibrated on the corpus's
calibration split (``bench/pron_calibrate.py``; ``gop_thresholds.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .confusions import CONFUSIONS
from .ctc_align import BLANK_LIKE, AlignedSlot, Emissions
from .gop_thresholds import ABSENT, SUBSTITUTE_MARGIN
from .lexicon import ACCEPTED, Slot

#: Nats of margin that make a slot's score 100 (and minus this, 0).
SCORE_SPAN = 3.0
#: The window reaches this many frames out past a word's first and last slots.
EDGE_FRAMES = 2
#: A symbol heard in place of an absent one must reach this log-posterior to be named;
#: below it the sound is reported as dropped ("").
NAMED = float(np.log(0.3))


@dataclass(frozen=True)
class SlotGop:
    slot: Slot
    start: int
    end: int
    expected: float
    substitute: float
    #: The substitute (or, for an absent sound, the best other symbol) heard, "" for none.
    heard: str
    margin: float

    @property
    def flagged(self) -> bool:
        return self.margin < 0

    @property
    def score(self) -> float:
        return round(100 * min(max(0.5 + self.margin / (2 * SCORE_SPAN), 0.0), 1.0), 1)


@functools.cache
def substitutes(slot: Slot, last: bool) -> frozenset[str]:
    """The model's symbols for the learner substitutions of ``slot``'s phone."""
    targets = [
        c.target
        for c in CONFUSIONS
        if c.source == slot.phone and c.target and (last or not c.final)
    ]
    symbols = {s for t in targets for s in ACCEPTED.get(t, ())}
    return frozenset(symbols - slot.accepted)


def _window(slots: tuple[AlignedSlot, ...], k: int, frames: int) -> tuple[int, int]:
    start = slots[k - 1].end if k else max(slots[0].start - EDGE_FRAMES, 0)
    end = slots[k + 1].start if k + 1 < len(slots) else min(slots[-1].end + EDGE_FRAMES, frames)
    return min(start, slots[k].start), max(end, slots[k].end)


def _best_other(emissions: Emissions, slot: Slot, start: int, end: int) -> tuple[str, float]:
    """The best symbol in the window that is neither the slot's nor blank, and its log-posterior."""
    window = emissions.log_probs[start:end].copy()
    excluded = [emissions.index[s] for s in (*slot.accepted, *BLANK_LIKE) if s in emissions.index]
    window[:, excluded] = -np.inf
    frame, column = np.unravel_index(int(np.argmax(window)), window.shape)
    symbols = list(emissions.index)
    return symbols[int(column)], float(window[frame, column])


def measure(slots: tuple[AlignedSlot, ...], emissions: Emissions) -> list[SlotGop]:
    """Each aligned slot of one word, measured."""
    frames = len(emissions.blank)
    out: list[SlotGop] = []
    for k, aligned in enumerate(slots):
        slot = aligned.slot
        start, end = _window(slots, k, frames)
        expected = float(emissions.of(slot.accepted)[start:end].max())
        last = k == len(slots) - 1
        competitors = frozenset() if slot.reduced else substitutes(slot, last)
        substitute, heard = -np.inf, ""
        if competitors:
            values = {s: float(emissions.of(frozenset({s}))[start:end].max()) for s in competitors}
            heard = max(values, key=lambda s: values[s])
            substitute = values[heard]
        margin = min(expected - substitute + SUBSTITUTE_MARGIN, expected - ABSENT)
        if slot.reduced:  # scored, never flagged (lexicon.py)
            margin, heard = max(expected - ABSENT, 0.0), ""
        elif margin < 0 and expected - substitute + SUBSTITUTE_MARGIN >= 0:
            # Absent, not replaced by a learner substitute: name what was heard instead.
            other, value = _best_other(emissions, slot, start, end)
            heard = other if value >= NAMED else ""
        out.append(SlotGop(slot, aligned.start, aligned.end, expected, substitute, heard, margin))
    return out
