"""The reference text force-aligned to the phoneme model's frames by a CTC Viterbi (pure numpy).

The graph: word after word, each any of its variants (``lexicon.py``), each variant its
slots in order with an optional blank between two of them (a required one between two
slots that accept the same symbol, as CTC requires). Between words, before the first
and after the last: blank (silence) at no cost, or **garbage** (speech that is not the
text: a hesitation, an inserted word, talk before or after the reading) at
``GARBAGE_COST`` nats per frame. From any word on, the rest of the text may be left
unread at ``UNREAD_COST`` (a reading that stops early). No word inside the read part
is skipped: a word not said gets its slots on the frames that fit them best, and its
low goodness of pronunciation says so.

A slot's emission is the log of the summed posterior of the symbols it accepts; blank's
is the summed posterior of blank, the word boundary and the length mark; garbage's
is the log of everything else, less its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .lexicon import Entry, Slot

#: Nats per frame of speech explained as not the text (inserted or other speech).
GARBAGE_COST = 2.0
#: Nats for each stretch of garbage between two words of the text: without it, a path
#: could leave the text at any repeated phrase and take it up again at its next occurrence.
INSERTION_COST = 6.0
#: Nats for leaving the rest of the text unread.
UNREAD_COST = 8.0
#: Symbols that explain a frame as no sound (besides CTC's blank).
BLANK_LIKE = ("<blank>", "<wb>", "ː", "ˑ")
_NEG = -1e9


@dataclass(frozen=True)
class AlignedSlot:
    """One expected slot on the frames ``[start, end)`` where the path emitted it."""

    slot: Slot
    start: int
    end: int


@dataclass(frozen=True)
class AlignedWord:
    """A word of the text: the variant the path took and its slots (None: left unread)."""

    index: int
    variant: int | None
    slots: tuple[AlignedSlot, ...]


@dataclass(frozen=True)
class CtcAlignment:
    words: tuple[AlignedWord, ...]
    #: Stretches ``[start, end)`` of frames explained as garbage (speech not the text).
    garbage: tuple[tuple[int, int], ...]
    frames: int


class Emissions:
    """Per-frame log-probabilities of slots, blank and garbage, from the model's output."""

    def __init__(self, log_probs: NDArray[np.float32], vocabulary: Sequence[str]) -> None:
        self.log_probs = log_probs
        self.index = {token: k for k, token in enumerate(vocabulary)}
        blank = [self.index[t] for t in BLANK_LIKE if t in self.index]
        self.blank = _logsumexp(log_probs[:, blank])
        speech = np.clip(1.0 - np.exp(self.blank), 1e-6, 1.0)
        self.garbage = np.log(speech) - GARBAGE_COST
        self._sets: dict[frozenset[str], NDArray[np.float64]] = {}

    def window(self, start: int, end: int) -> Emissions:
        """The same, on frames ``[start, end)`` only."""
        part = Emissions.__new__(Emissions)
        part.log_probs, part.index = self.log_probs[start:end], self.index
        part.blank, part.garbage = self.blank[start:end], self.garbage[start:end]
        part._sets = {}
        return part

    def of(self, symbols: frozenset[str]) -> NDArray[np.float64]:
        """The log of the summed posterior of ``symbols`` in each frame."""
        if symbols not in self._sets:
            columns = [self.index[s] for s in symbols if s in self.index]
            if columns:
                self._sets[symbols] = _logsumexp(self.log_probs[:, columns])
            else:
                self._sets[symbols] = np.full(len(self.log_probs), _NEG)
        return self._sets[symbols]


def _logsumexp(values: NDArray[np.float32]) -> NDArray[np.float64]:
    top = values.max(axis=1, keepdims=True).astype(np.float64)
    out: NDArray[np.float64] = (top + np.log(np.exp(values - top).sum(axis=1, keepdims=True)))[:, 0]
    return out


# Kinds of states.
_PHONE, _BLANK, _GARBAGE = 0, 1, 2


@dataclass
class _Graph:
    emission: list[NDArray[np.float64]]
    kind: list[int]
    preds: list[list[tuple[int, float]]]
    #: (word, variant, slot) of each phone state; None for blank and garbage.
    owner: list[tuple[int, int, int] | None]
    starts: list[int]
    #: States the path may end in.
    finals: list[int]

    def add(
        self,
        emission: NDArray[np.float64],
        kind: int,
        owner: tuple[int, int, int] | None = None,
    ) -> int:
        self.emission.append(emission)
        self.kind.append(kind)
        self.preds.append([])
        self.owner.append(owner)
        state = len(self.kind) - 1
        self.preds[state].append((state, 0.0))
        return state


def _build(
    words: Sequence[Entry], emissions: Emissions, read: int = 0
) -> tuple[_Graph, list[int], list[int]]:
    """The graph, the states the unread end may be entered from (after the first ``read``
    words only), and the end states."""
    graph = _Graph([], [], [], [], [], [])
    lead_blank = graph.add(emissions.blank, _BLANK)
    lead_garbage = graph.add(emissions.garbage, _GARBAGE)
    graph.preds[lead_garbage].append((lead_blank, 0.0))
    graph.preds[lead_blank].append((lead_garbage, 0.0))
    graph.starts += [lead_blank, lead_garbage]
    before = [lead_blank, lead_garbage]  # states a word may be entered from
    unread_from = list(before) if read <= 0 else []
    for w, word in enumerate(words):
        exits: list[int] = []
        for v, variant in enumerate(word.variants):
            previous: int | None = None
            gap: int | None = None
            for k, slot in enumerate(variant):
                state = graph.add(emissions.of(slot.accepted), _PHONE, (w, v, k))
                if previous is None:
                    graph.preds[state] += [(p, 0.0) for p in before]
                    if w == 0:
                        graph.starts.append(state)
                else:
                    assert gap is not None
                    graph.preds[state].append((gap, 0.0))
                    if not slot.accepted & variant[k - 1].accepted:
                        graph.preds[state].append((previous, 0.0))
                if k < len(variant) - 1:
                    gap = graph.add(emissions.blank, _BLANK)
                    graph.preds[gap].append((state, 0.0))
                previous = state
            assert previous is not None
            exits.append(previous)
        blank = graph.add(emissions.blank, _BLANK)
        garbage = graph.add(emissions.garbage, _GARBAGE)
        graph.preds[blank] += [(e, 0.0) for e in exits] + [(garbage, 0.0)]
        entry = INSERTION_COST if w < len(words) - 1 else 0.0  # after the last: free
        graph.preds[garbage] += [(e, entry) for e in exits] + [(blank, entry)]
        before = [*exits, blank, garbage]
        if read - 1 <= w < len(words) - 1:
            unread_from += before
    graph.finals += before
    return graph, unread_from, before


def align(words: Sequence[Entry], emissions: Emissions, read: int = 0) -> CtcAlignment:
    """The best path of the text's graph through the frames; the first ``read`` words are
    known to be read (the transcriber heard them), so the path may not leave them unread."""
    frames = len(emissions.blank)
    graph, unread_from, _ = _build(words, emissions, min(read, len(words)))
    # The unread end: its own blank and garbage, entered from any word but the last.
    end_blank = graph.add(emissions.blank, _BLANK)
    end_garbage = graph.add(emissions.garbage, _GARBAGE)
    graph.preds[end_blank].append((end_garbage, 0.0))
    graph.preds[end_garbage].append((end_blank, 0.0))
    graph.finals += [end_blank, end_garbage]
    states = len(graph.kind)
    width = max(len(p) for p in graph.preds[:end_blank])
    preds = np.full((states, width), states, dtype=np.int64)  # ``states``: never reached
    costs = np.zeros((states, width))
    for s, row in enumerate(graph.preds[:end_blank]):
        for k, (p, c) in enumerate(row):
            preds[s, k], costs[s, k] = p, c
    preds[end_blank, :2] = (end_blank, end_garbage)
    preds[end_garbage, :2] = (end_garbage, end_blank)
    sources = np.array(unread_from or [states], dtype=np.int64)  # [states]: never
    emission = np.stack(graph.emission, axis=1)  # frames x states
    score = np.full(states + 1, _NEG)
    score[graph.starts] = emission[0, graph.starts]
    back = np.zeros((frames, states), dtype=np.int8)
    jumped = np.zeros(frames, dtype=np.int64)  # the source of an entry into the unread end
    for t in range(1, frames):
        candidates = score[preds] - costs
        best = candidates.argmax(axis=1)
        new = candidates[np.arange(states), best]
        source = int(sources[np.argmax(score[sources])])
        jump = score[source] - UNREAD_COST
        jumped[t] = source
        for end in (end_blank, end_garbage):
            if jump > new[end]:
                new[end], best[end] = jump, -1
        back[t] = best
        score[:states] = new + emission[t]
    last = max(graph.finals, key=lambda s: score[s])
    path = np.empty(frames, dtype=np.int64)
    state = last
    for t in range(frames - 1, -1, -1):
        path[t] = state
        if t:
            k = int(back[t, state])
            state = int(jumped[t]) if k == -1 else int(preds[state, k])
    return _read(words, graph, path)


def _read(words: Sequence[Entry], graph: _Graph, path: NDArray[np.int64]) -> CtcAlignment:
    """Words, slots and garbage stretches from the frame-by-frame path."""
    spans: dict[tuple[int, int, int], list[int]] = {}
    taken: dict[int, int] = {}
    garbage: list[tuple[int, int]] = []
    for t, state in enumerate(path.tolist()):
        owner = graph.owner[state] if state < len(graph.owner) else None
        if owner is not None:
            spans.setdefault(owner, [t, t + 1])[1] = t + 1
            taken[owner[0]] = owner[1]
        elif state < len(graph.kind) and graph.kind[state] == _GARBAGE:
            if garbage and garbage[-1][1] == t:
                garbage[-1] = (garbage[-1][0], t + 1)
            else:
                garbage.append((t, t + 1))
    aligned = []
    for w, word in enumerate(words):
        v = taken.get(w)
        if v is None:
            aligned.append(AlignedWord(w, None, ()))
            continue
        slots = tuple(
            AlignedSlot(slot, *spans[(w, v, k)]) for k, slot in enumerate(word.variants[v])
        )
        aligned.append(AlignedWord(w, v, slots))
    return CtcAlignment(tuple(aligned), tuple(garbage), len(path))
