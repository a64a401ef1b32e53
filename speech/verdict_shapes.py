"""The verdicts in the shapes clients read: the older per-word keys, the word mistakes and
the ILPS phoneme mistakes, all built from the same sounds (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def compatible(word: dict[str, Any]) -> dict[str, Any]:
    """The keys the previous method's per-word view had, kept for existing clients:
    ``mistakes`` counts the word's flagged sounds (all of them for a missed word)."""
    if word["verdict"] == "missed":
        flagged = len(word["expected"].split())
    else:
        flagged = sum("heard" in p for p in word["phonemes"])
    return {
        **word,
        "position": word["index"],
        "ipa": word["expected"],
        "mistakes": flagged,
        "correct": word["verdict"] == "correct",
    }


def word_mistakes(
    words: Sequence[dict[str, Any]], inserted: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each word not ``correct``, and each inserted one, in time order."""
    mistakes = [
        {"word": w["word"], "index": w["index"], "start": w["start"], "end": w["end"],
         "type": w["verdict"], "expected": w["expected"], "heard": w["heard"]}
        for w in words
        if w["verdict"] != "correct"
    ]  # fmt: skip
    mistakes += [
        {"word": w["word"], "index": None, "start": w["start"], "end": w["end"],
         "type": "inserted", "expected": "", "heard": w["heard"]}
        for w in inserted
    ]  # fmt: skip
    mistakes.sort(key=lambda m: (m["start"] is None, m["start"] or 0.0))
    return mistakes


def ilps_mistakes(words: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The same verdicts in the ILPS shape (phoneme tokens with positions), and the
    reference IPA they index: a sound heard differently is a Replacement, a missed
    word's sounds and a dropped sound are Deletions; inserted speech has no reference
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
