"""From an aligned, scored reading to what a learner sees: verdicts, scores, mistakes (pure).

* A phone is **heard differently** when its GOP is below ``PHONE_BAD`` and the
  phone loop put another phone on most of its frames.
* A word is ``missed`` when the path skipped it or the loop heard silence or noise
  on most of its frames; ``mispronounced`` when the path took one of its error
  variants (a learner substitution, ``confusions.py``: ``heard`` is the variant, the
  replaced sound's entry carries what was said instead, "" for a dropped one), or when
  its GOP (frame-weighted over its
  phones, each phone's GOP taken relative to its mean on correct speech) is below a
  threshold that is more lenient for short words; else ``correct``
  (``gop_calibration.py``, computed on a calibration split of the corpus).
* A stretch between words that the loop heard as speech, at least ``INSERTED_FRAMES``
  long, is an ``inserted`` word: its text is the recogniser's words there, and when
  the recogniser's words are known, a stretch where it heard none is not one.
* Scores map GOP linearly from ``FLOOR`` (0) to ``GOOD`` (100). Accuracy is the mean
  score of the words read, so a half-read text is not a bad one: completeness says
  how much was read. Silence is never scored.

The phone thresholds were set by looking at the corpus's GOP distributions; the word
threshold is calibrated (bench/pron_calibrate.py; bench/README.md has held-out figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import gop_calibration as calibration
from .base import Word
from .confusions import ErrorVariant
from .forced import AlignedPhone, Alignment, Gap
from .ipa import to_ipa

#: Nats per frame (the expected phone against the best competitor, see forced.py).
GOOD = -1.0
FLOOR = -6.0
PHONE_BAD = -8.0
#: The loop heard silence or noise on at least this share of a word's frames: missed.
MISSED_SILENT = 0.7
#: Speech between words this long (10 ms frames) is an inserted word.
INSERTED_FRAMES = 25
FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class ReferenceWord:
    """One spoken word of the reference, as the aligner was given it."""

    text: str
    written: str
    #: The first dictionary pronunciation (IPA), reported for a word the path skipped.
    ipa: tuple[str, ...]
    known: bool


def score_of(gop: float) -> float:
    """0..100 from a GOP in nats per frame."""
    return round(100 * min(max((gop - FLOOR) / (GOOD - FLOOR), 0.0), 1.0), 1)


def _seconds(frame: int) -> float:
    return round(frame * FRAME_SECONDS, 3)


def _ipa(phone: str) -> str:
    return to_ipa(phone) or phone.lower()


def _differs(phone: AlignedPhone) -> bool:
    return phone.gop < PHONE_BAD and bool(phone.heard) and phone.heard != phone.phone


def _phoneme(phone: AlignedPhone) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ipa": _ipa(phone.phone),
        "start": _seconds(phone.start),
        "end": _seconds(phone.start + phone.frames),
        "score": score_of(phone.gop),
    }
    if _differs(phone):
        entry["heard"] = _ipa(phone.heard)
    return entry


def _normalised(phones: Sequence[AlignedPhone]) -> float:
    """Frame-weighted GOP with each phone's mean on correct speech taken out: some phones
    (short stops, reduced vowels) score low in this model however well they are said."""
    overall = calibration.OVERALL_MEAN
    means = calibration.PHONE_MEAN
    frames = sum(p.frames for p in phones)
    return sum((p.gop - means.get(p.phone, overall) + overall) * p.frames for p in phones) / frames


def word_threshold(frames: int) -> float:
    """Below this normalised GOP a word of ``frames`` is mispronounced: a short word's GOP
    is the mean of few frames, so it varies more when said well."""
    return calibration.WORD_BAD - calibration.WORD_BAD_LENGTH / math.sqrt(max(frames, 1))


def _worst_phone(phones: Sequence[AlignedPhone]) -> float:
    """The lowest phone GOP with its phone's mean taken out: one sound replaced by another
    barely moves a long word's mean."""
    overall = calibration.OVERALL_MEAN
    return min(p.gop - calibration.PHONE_MEAN.get(p.phone, overall) + overall for p in phones)


def _substituted(
    entry: dict[str, Any], ref: ReferenceWord, phones: Sequence[AlignedPhone], error: ErrorVariant
) -> dict[str, Any]:
    """A word whose path took an error variant: mispronounced, each expected phone on its
    frames; the replaced one scores 0 and carries what was heard ("" when dropped, on no
    frames, where it would have been)."""
    phonemes: list[dict[str, Any]] = []
    weighted: list[tuple[float, int]] = []
    typical = max(round(sum(p.frames for p in phones) / len(phones)), 1)
    for k, expected in enumerate(error.expected):
        # The variant's phones are the expected ones, one on past a dropped sound.
        if k == error.position and not error.heard:
            at = phones[k].start if k < len(phones) else phones[-1].start + phones[-1].frames
            phonemes.append(
                {"ipa": _ipa(expected), "start": _seconds(at), "end": _seconds(at),
                 "score": 0.0, "heard": ""}
            )  # fmt: skip
            weighted.append((0.0, typical))
            continue
        p = phones[k if error.heard or k < error.position else k - 1]
        phoneme = _phoneme(p)
        if k == error.position:
            phoneme = {**phoneme, "ipa": _ipa(expected), "score": 0.0, "heard": _ipa(p.phone)}
        phonemes.append(phoneme)
        weighted.append((phoneme["score"], p.frames))
    score = sum(s * f for s, f in weighted) / sum(f for _, f in weighted)
    return {
        **entry,
        "start": _seconds(phones[0].start),
        "end": _seconds(phones[-1].start + phones[-1].frames),
        "score": round(score, 1),
        "verdict": "mispronounced",
        "expected": " ".join(_ipa(p) for p in error.expected),
        "heard": " ".join(_ipa(p) for p in error.phones),
        "known": ref.known,
        "phonemes": phonemes,
    }


def _word(
    index: int,
    ref: ReferenceWord,
    phones: Sequence[AlignedPhone],
    error: ErrorVariant | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"word": ref.text, "written": ref.written, "index": index}
    frames = sum(p.frames for p in phones)
    silent = sum(p.silent * p.frames for p in phones) / frames if frames else 1.0
    if phones and silent < MISSED_SILENT and error is not None:
        if len(phones) == len(error.phones):  # else not the variant's phones: by GOP
            return _substituted(entry, ref, phones, error)
    if not phones or silent >= MISSED_SILENT:
        expected = [_ipa(p.phone) for p in phones] or list(ref.ipa)
        start = _seconds(phones[0].start) if phones else None
        end = _seconds(phones[-1].start + phones[-1].frames) if phones else None
        return {
            **entry, "start": start, "end": end, "score": 0.0, "verdict": "missed",
            "expected": " ".join(expected), "heard": "", "known": ref.known, "phonemes": [],
        }  # fmt: skip
    gop = sum(p.gop * p.frames for p in phones) / frames
    # The word's GOP decides; one phone alone only when far below its usual (a phone's
    # GOP is noisy: native readings have one below PHONE_BAD in one word of five).
    worst = _worst_phone(phones)
    bad = _normalised(phones) < word_threshold(frames) or worst < calibration.SOUND_BAD
    verdict = "mispronounced" if bad else "correct"
    # What the loop heard on each phone's frames: the learner's sounds, as best it can tell.
    heard = [_ipa(p.heard or p.phone) for p in phones]
    return {
        **entry,
        "start": _seconds(phones[0].start),
        "end": _seconds(phones[-1].start + phones[-1].frames),
        "score": score_of(gop),
        "verdict": verdict,
        "expected": " ".join(_ipa(p.phone) for p in phones),
        "heard": " ".join(heard) if verdict == "mispronounced" else "",
        "known": ref.known,
        "phonemes": [_phoneme(p) for p in phones],
    }


def _compatible(word: dict[str, Any]) -> dict[str, Any]:
    """The keys the previous method's per-word view had, kept for existing clients."""
    flagged = sum("heard" in p for p in word["phonemes"]) or (word["verdict"] != "correct")
    return {
        **word,
        "position": word["index"],
        "ipa": word["expected"],
        "mistakes": int(flagged),
        "correct": word["verdict"] == "correct",
    }


def _inserted(gap: Gap, recognised: Sequence[Word]) -> dict[str, Any]:
    start, end = _seconds(gap.start), _seconds(gap.start + gap.frames)
    inside = [w.text for w in recognised if start <= (w.start + w.end) / 2 < end]
    heard = " ".join(_ipa(p) for p in gap.heard)
    return {"word": " ".join(inside), "start": start, "end": end, "heard": heard}


@dataclass(frozen=True)
class Verdicts:
    words: list[dict[str, Any]]
    inserted: list[dict[str, Any]]
    accuracy: float
    completeness: float
    mistakes: list[dict[str, Any]]


def judge(
    references: Sequence[ReferenceWord], alignment: Alignment, recognised: Sequence[Word] = ()
) -> Verdicts:
    """Verdicts, scores and mistakes of an aligned reading."""
    by_word: list[list[AlignedPhone]] = [[] for _ in references]
    for phone in alignment.phones:
        by_word[phone.word].append(phone)
    words = [
        _compatible(_word(i, ref, by_word[i], alignment.errors.get(i)))
        for i, ref in enumerate(references)
    ]
    inserted = [
        entry
        for g in alignment.gaps
        if g.frames >= INSERTED_FRAMES
        # With the recogniser's words, speech counts only where it heard a word: the
        # phone loop alone puts phones on breath and room noise.
        if (entry := _inserted(g, recognised))["word"] or not recognised
    ]
    read = [w for w in words if w["verdict"] != "missed"]
    accuracy = round(sum(w["score"] for w in read) / len(read), 2) if read else 0.0
    completeness = round(100 * len(read) / len(words), 2) if words else 0.0
    mistakes = [
        {
            "word": w["word"],
            "index": w["index"],
            "start": w["start"],
            "end": w["end"],
            "type": w["verdict"],
            "expected": w["expected"],
            "heard": w["heard"],
        }  # fmt: skip
        for w in words
        if w["verdict"] != "correct"
    ]
    mistakes += [
        {
            "word": w["word"],
            "index": None,
            "start": w["start"],
            "end": w["end"],
            "type": "inserted",
            "expected": "",
            "heard": w["heard"],
        }  # fmt: skip
        for w in inserted
    ]
    mistakes.sort(key=lambda m: (m["start"] is None, m["start"] or 0.0))
    return Verdicts(words, inserted, accuracy, completeness, mistakes)


def ilps_mistakes(words: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The same verdicts in the ILPS shape (phoneme tokens with positions), and the
    reference IPA they index: a phone heard differently is a Replacement, a missed
    word's phones and a dropped sound are Deletions; inserted speech has no reference
    and stays out."""
    mistakes: list[dict[str, Any]] = []
    reference: list[str] = []
    actual = 0
    for word in words:
        phonemes = word["phonemes"] or [{"ipa": t} for t in word["expected"].split()]
        for phoneme in phonemes:
            token = {"position": len(reference), "value": phoneme["ipa"]}
            reference.append(phoneme["ipa"])
            if word["verdict"] == "missed" or phoneme.get("heard") == "":
                mistakes.append({"reference": token, "actual": None, "type": "Deletion"})
                continue
            if "heard" in phoneme:
                heard = {"position": actual, "value": phoneme["heard"]}
                mistakes.append({"reference": token, "actual": heard, "type": "Replacement"})
            actual += 1
    return mistakes, " ".join(reference)
