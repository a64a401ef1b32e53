"""From an aligned, measured reading to what a learner sees: verdicts, scores, mistakes (pure).

One source of truth per word, its slots' margins (``gop.py``):

* ``missed``: the path left it unread (the end of a text not read; never a word before
  the last pair of text words the transcriber heard in order), or none of its sounds is
  there at all and the transcriber did not hear it; or the recording is a reading of another text
  (``transcript_match.py``): every word, and ``other_text`` says so.
* ``mispronounced``: some sound is heard differently. Either a slot is flagged by its
  GOP (a learner substitute beats it, or it is absent), or the transcriber heard another
  word in its place **and** the free phone decoding is closer to that word than to the
  expected one (a replaced word): then the sounds the decoding did not hear as expected
  are the ones flagged, with what it heard.
* ``correct``: no sound flagged.

A flagged sound carries ``heard`` ("" when dropped) and scores under 50, an unflagged
one 50 or more; a word's score is the mean of its sounds'; ``mistakes`` (both shapes)
lists exactly the flagged sounds. Accuracy is the mean score of the words read, and
completeness the share of them, so a half-read text is not a bad one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .ctc_align import AlignedWord, CtcAlignment, Emissions
from .gop import SlotGop, measure
from .gop_thresholds import ABSENT
from .lexicon import Entry, Slot
from .phone_model import FRAME_SECONDS, HeardPhone
from .transcript_match import Match
from .verdict_shapes import compatible, ilps_mistakes, word_mistakes

__all__ = ["ReferenceWord", "Verdicts", "ilps_mistakes", "judge"]

#: The share of a text's words the phones must find said to overrule the transcriber's
#: "another text".
PHONES_READ = 0.5
#: Speech the path explained as not the text, this long (20 ms frames), is an inserted word.
INSERTED_FRAMES = 15


@dataclass(frozen=True)
class ReferenceWord:
    """One spoken word of the reference, as the aligner was given it."""

    text: str
    written: str
    entry: Entry


@dataclass(frozen=True)
class Verdicts:
    words: list[dict[str, Any]]
    inserted: list[dict[str, Any]]
    accuracy: float
    completeness: float
    mistakes: list[dict[str, Any]]
    other_text: bool


def _seconds(frame: int) -> float:
    return round(frame * FRAME_SECONDS, 3)


def _distance(slots: Sequence[Slot], phones: Sequence[str]) -> tuple[int, list[str | None]]:
    """Edit distance between expected slots and heard symbols, and for each slot the symbol
    aligned to it when it is not one the slot accepts ("" deleted, None: accepted)."""
    n, m = len(slots), len(phones)
    table = [[i + j if not i * j else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = phones[j - 1] in slots[i - 1].accepted
            table[i][j] = min(
                table[i - 1][j - 1] + (not same), table[i - 1][j] + 1, table[i][j - 1] + 1
            )
    heard: list[str | None] = [None] * n
    i, j = n, m
    while i > 0:
        same = j > 0 and phones[j - 1] in slots[i - 1].accepted
        if j > 0 and table[i][j] == table[i - 1][j - 1] + (not same):
            heard[i - 1] = None if same else phones[j - 1]
            i, j = i - 1, j - 1
        elif table[i][j] == table[i - 1][j] + 1:
            heard[i - 1] = ""
            i -= 1
        else:
            j -= 1
    return table[n][m], heard


def _phones_in(heard: Sequence[HeardPhone], start: int, end: int) -> list[str]:
    return [p.ipa for p in heard if start - 2 <= p.start < end + 2]


def _replaced(
    ref: ReferenceWord,
    aligned: AlignedWord,
    said: Sequence[Entry],
    heard: Sequence[HeardPhone],
) -> list[str | None] | None:
    """Per slot, what was heard instead when the word was replaced by ``said`` (the
    transcriber's words) and the free decoding agrees; None when it does not."""
    phones = _phones_in(heard, aligned.slots[0].start, aligned.slots[-1].end)
    variant = ref.entry.variants[aligned.variant or 0]
    expected, per_slot = _distance(variant, phones)
    others = [v for e in said for v in e.variants]
    if not others or not any(per_slot):
        return None
    spoken = min(_distance(v, phones)[0] for v in others)
    return per_slot if spoken < expected else None


def _sound(gop: SlotGop, heard: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ipa": gop.slot.ipa,
        "start": _seconds(gop.start),
        "end": _seconds(gop.end),
        "score": gop.score,
    }
    if heard is not None:  # a replaced word's sound: heard as the decoding says
        return {**entry, "score": min(gop.score, 0.0), "heard": heard}
    if gop.flagged:
        entry["heard"] = gop.heard
    return entry


def _missed(index: int, ref: ReferenceWord, aligned: AlignedWord | None) -> dict[str, Any]:
    slots = aligned.slots if aligned is not None else ()
    variant = ref.entry.variants[aligned.variant or 0] if aligned is not None else None
    expected = [s.ipa for s in (variant or ref.entry.variants[0])]
    return {
        "word": ref.text, "written": ref.written, "index": index,
        "start": _seconds(slots[0].start) if slots else None,
        "end": _seconds(slots[-1].end) if slots else None,
        "score": 0.0, "verdict": "missed", "expected": " ".join(expected), "heard": "",
        "known": ref.entry.known, "phonemes": [],
    }  # fmt: skip


def _word(
    index: int,
    ref: ReferenceWord,
    aligned: AlignedWord,
    emissions: Emissions,
    replaced_by: list[str | None] | None,
    said: str,
    heard_there: bool,
) -> dict[str, Any]:
    gops = measure(aligned.slots, emissions)
    if replaced_by is None and not heard_there and all(g.expected < ABSENT for g in gops):
        return _missed(index, ref, aligned)
    if replaced_by is None:
        sounds = [_sound(g) for g in gops]
    else:
        sounds = [_sound(g, h) for g, h in zip(gops, replaced_by, strict=True)]
    flagged = [s for s in sounds if "heard" in s]
    entry: dict[str, Any] = {
        "word": ref.text,
        "written": ref.written,
        "index": index,
        "start": sounds[0]["start"],
        "end": sounds[-1]["end"],
        "score": round(sum(s["score"] for s in sounds) / len(sounds), 1),
        "verdict": "mispronounced" if flagged else "correct",
        "expected": " ".join(s["ipa"] for s in sounds),
        "heard": " ".join(s.get("heard", s["ipa"]) for s in sounds if s.get("heard") != "")
        if flagged
        else "",
        "known": ref.entry.known,
        "phonemes": sounds,
    }
    if replaced_by is not None:
        entry["heard_word"] = said
    return entry


def _inserted(
    alignment: CtcAlignment, match: Match, heard: Sequence[HeardPhone], recognised: bool
) -> list[dict[str, Any]]:
    """Speech that is not the text: the transcriber's extra words, or without a
    transcript, the garbage stretches long enough to be words."""
    if recognised:
        return [
            {
                "word": match.heard[j].text,
                "start": round(match.heard[j].start, 3),
                "end": round(match.heard[j].end, 3),
                "heard": " ".join(
                    p.ipa
                    for p in heard
                    if match.heard[j].start <= p.start * FRAME_SECONDS < match.heard[j].end
                ),
            }
            for j in match.extra
        ]
    return [
        {"word": "", "start": _seconds(a), "end": _seconds(b),
         "heard": " ".join(p.ipa for p in heard if a <= p.start < b)}
        for a, b in alignment.garbage
        if b - a >= INSERTED_FRAMES
    ]  # fmt: skip


def _phones_read_it(alignment: CtcAlignment, emissions: Emissions) -> bool:
    """The phones say the text was read: the path read at least ``PHONES_READ`` of its
    words with every sound present. The transcriber alone is not enough to call a
    recording another text: on a voice it hears badly (synthetic speech), it writes
    other words for this one."""
    present = sum(
        bool(w.slots) and all(g.expected >= ABSENT for g in measure(w.slots, emissions))
        for w in alignment.words
    )
    return present >= PHONES_READ * len(alignment.words)


def judge(
    references: Sequence[ReferenceWord],
    alignment: CtcAlignment,
    emissions: Emissions,
    heard: Sequence[HeardPhone],
    match: Match,
    said: dict[int, list[Entry]],
    recognised: bool,
) -> Verdicts:
    """Verdicts, scores and mistakes of an aligned reading. ``said``: per text word the
    transcriber heard as other words, those words' entries."""
    words: list[dict[str, Any]] = []
    other = match.other_text and not _phones_read_it(alignment, emissions)
    for i, ref in enumerate(references):
        aligned = alignment.words[i]
        if other or aligned.variant is None:
            words.append(compatible(_missed(i, ref, None)))
            continue
        replaced_by = _replaced(ref, aligned, said.get(i, []), heard) if i in said else None
        said_text = " ".join(match.heard[j].text for j in match.replaced.get(i, ()))
        there = i in match.same  # the transcriber heard this very word: not missed
        words.append(compatible(_word(i, ref, aligned, emissions, replaced_by, said_text, there)))
    inserted = [] if other else _inserted(alignment, match, heard, recognised)
    read = [w for w in words if w["verdict"] != "missed"]
    accuracy = round(sum(w["score"] for w in read) / len(read), 2) if read else 0.0
    completeness = round(100 * len(read) / len(words), 2) if words else 0.0
    return Verdicts(words, inserted, accuracy, completeness, word_mistakes(words, inserted), other)
