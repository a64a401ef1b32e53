"""Regenerate speech/gop_calibration.py from the corpus's calibration split.

The split (tests/pron_corpus.py): the human reading's even clauses and four espeak-ng
voices the held-out split never uses, on the same even clauses. From their correct
readings: each phone's mean GOP, shrunk toward the mean of all phones by ``PRIOR``
pseudo-observations (a phone seen twice is not trusted alone). Then the word threshold
and its length term are picked on the same split's replaced and substituted words: the
grid point with the most flags on them among those that flag at most ``NATIVE_FLAGS``
of the native words. bench/pronunciation.py reports the held-out split.

All of that once per error-variant prior (``PRIORS``, speech/forced.py's error variants:
a word whose path took one is flagged whatever its GOP); the prior kept is the one with
the highest substituted-word recall minus false alarms on the correct espeak-ng words,
among those that keep the replaced-word recall of no error variants (prior 0).

    python bench/pron_calibrate.py          # rewrites speech/gop_calibration.py
    CALIBRATE_PRIORS=0,1e-15 python bench/pron_calibrate.py   # fewer priors
    CALIBRATE_CACHE=/tmp/cal python bench/pron_calibrate.py  # alignments kept there
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speech.forced import AlignedPhone, align  # noqa: E402
from speech.normalise import spoken_words  # noqa: E402
from speech.pronounce import variants_of  # noqa: E402
from speech.verdicts import MISSED_SILENT  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402

PRIOR = 5.0
NATIVE_FLAGS = 0.05
THRESHOLDS = [-1.0 - 0.25 * k for k in range(13)]  # -1.0 .. -4.0 nats per frame
LENGTH_TERMS = [0.0, 2.5, 5.0, 7.5, 10.0]
SOUND_THRESHOLDS = [-6.0, -8.0, -10.0, -12.0, -1e9]  # -1e9: no sound rule
PRIORS = [0.0, 1e-25, 1e-20, 1e-15, 1e-10, 1e-5]
OUT = Path(__file__).resolve().parents[1] / "speech" / "gop_calibration.py"


@dataclass(frozen=True)
class Word:
    phones: list[AlignedPhone]
    #: The path took one of the word's error variants.
    erred: bool


def _words(pcm: bytes, text: str, prior: float) -> list[Word]:
    spoken = spoken_words(text)
    alignment = align(pcm, [variants_of(w.text)[0] for w in spoken], error_prior=prior)
    by_word: list[list[AlignedPhone]] = [[] for _ in spoken]
    for phone in alignment.phones if alignment else ():
        by_word[phone.word].append(phone)
    errors = alignment.errors if alignment else {}
    return [Word(phones, i in errors) for i, phones in enumerate(by_word)]


def _readings(prior: float) -> Iterator[tuple[str, list[Word], set[int]]]:
    """(kind, words, indices of the words that are wrong) over the calibration split."""
    human = corpus.human_sentences()
    for i in corpus.CALIBRATION_CLAUSES:
        rec = human[i]
        yield "native", _words(rec.pcm, rec.text, prior), set()
        for k in (1, 2, 3):
            for seed in (1, 2):
                text, positions = corpus.replaced(rec.text, k, seed * 100 + i)
                yield "replaced", _words(rec.pcm, text, prior), set(positions)
    renderings = corpus.espeak_renderings(corpus.CALIBRATION_CLAUSES, corpus.CALIBRATION_VOICES)
    for r in renderings:
        words = _words(r.pcm, r.text, prior)
        if r.word is None:
            yield "correct", words, set()
        else:  # only the substituted word counts: the rest is the correct rendering's
            yield "substituted", [words[r.word]], {0}


def _flagged(
    word: Word, means: dict[str, float], overall: float, bad: tuple[float, float, float]
) -> bool:
    """speech/verdicts.py's rule with the candidate thresholds (word, length term, sound)."""
    if word.erred:
        return True
    frames = sum(p.frames for p in word.phones)
    if not frames or sum(p.silent * p.frames for p in word.phones) / frames >= MISSED_SILENT:
        return True
    shifted = [p.gop - means.get(p.phone, overall) + overall for p in word.phones]
    gop = sum(g * p.frames for g, p in zip(shifted, word.phones, strict=True)) / frames
    return gop < bad[0] - bad[1] / frames**0.5 or min(shifted) < bad[2]


@dataclass(frozen=True)
class Fit:
    """The calibration at one error-variant prior, and its figures on the split."""

    prior: float
    overall: float
    means: dict[str, float]
    counts: dict[str, int]
    #: (word threshold, length term, sound threshold); None when none keeps the natives.
    bad: tuple[float, float, float] | None
    figures: dict[str, float]


def _share(flags: list[bool]) -> float:
    return round(100 * sum(flags) / len(flags), 1) if flags else 0.0


def _cached(prior: float) -> list[tuple[str, list[Word], set[int]]]:
    """The split's readings at ``prior``, from ``CALIBRATE_CACHE`` when aligned before."""
    cache = os.environ.get("CALIBRATE_CACHE")
    path = Path(cache) / f"{prior!r}.pickle" if cache else None
    if path is not None and path.exists():
        readings: list[tuple[str, list[Word], set[int]]] = pickle.loads(path.read_bytes())
        return readings
    readings = list(_readings(prior))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(readings))
    return readings


def _fit(prior: float) -> Fit:
    readings = _cached(prior)
    gops: dict[str, list[float]] = defaultdict(list)
    for kind, words, _ in readings:
        if kind in ("native", "correct"):
            # A word that took an error variant has the substitute's phones, not its own.
            for phone in (p for w in words if not w.erred for p in w.phones):
                gops[phone.phone].append(phone.gop)
    overall = statistics.fmean(g for v in gops.values() for g in v)
    means = {
        phone: round((sum(v) + PRIOR * overall) / (len(v) + PRIOR), 3)
        for phone, v in sorted(gops.items())
    }

    def flags(bad: tuple[float, float, float], kinds: tuple[str, ...]) -> list[bool]:
        return [
            _flagged(w, means, overall, bad)
            for kind, words, wrong in readings
            if kind in kinds
            for i, w in enumerate(words)
            if kind in ("native", "correct") or i in wrong
        ]

    best: tuple[int, tuple[float, float, float]] | None = None
    grid = [(w, n, s) for w in THRESHOLDS for n in LENGTH_TERMS for s in SOUND_THRESHOLDS]
    for bad in grid:
        native = flags(bad, ("native",))
        hits = flags(bad, ("replaced", "substituted"))
        if sum(native) <= NATIVE_FLAGS * len(native):
            if best is None or sum(hits) > best[0]:
                best = (sum(hits), bad)
    figures: dict[str, float] = {}
    if best is not None:
        figures = {
            "native_flagged": _share(flags(best[1], ("native",))),
            "replaced_recall": _share(flags(best[1], ("replaced",))),
            "substituted_recall": _share(flags(best[1], ("substituted",))),
            "espeak_false_alarms": _share(flags(best[1], ("correct",))),
        }
    counts = {phone: len(v) for phone, v in sorted(gops.items())}
    return Fit(prior, overall, means, counts, None if best is None else best[1], figures)


def _chosen(fits: list[Fit]) -> Fit:
    """The best substituted recall minus espeak false alarms, among the priors that keep
    the native words and the replaced-word recall of prior 0 (when it was tried)."""
    usable = [f for f in fits if f.bad is not None]
    plain = next((f for f in usable if f.prior == 0), None)
    if plain is not None:
        floor = plain.figures["replaced_recall"]
        usable = [f for f in usable if f.figures["replaced_recall"] >= floor]
    assert usable, "no prior keeps the native words"
    return max(
        usable,
        key=lambda f: f.figures["substituted_recall"] - f.figures["espeak_false_alarms"],
    )


def main() -> None:
    priors = [float(p) for p in os.environ.get("CALIBRATE_PRIORS", "").split(",") if p]
    fits = []
    for prior in priors or PRIORS:
        fits.append(fit := _fit(prior))
        print(json.dumps({"prior": prior, "bad": fit.bad, **fit.figures}), flush=True)
    best = _chosen(fits)
    assert best.bad is not None
    OUT.write_text(
        '"""GOP calibration of the word verdicts (generated by bench/pron_calibrate.py from\n'
        'the corpus\'s calibration split; provenance in tests/data/README.md)."""\n\n'
        "#: Error variants' weight relative to the dictionary's (speech/forced.py).\n"
        f"ERROR_PRIOR = {best.prior}\n"
        "#: Mean GOP (nats per frame) of the phones of correct readings, all phones.\n"
        f"OVERALL_MEAN = {round(best.overall, 3)}\n"
        "#: Each phone's mean GOP on correct readings, shrunk toward OVERALL_MEAN.\n"
        f"PHONE_MEAN: dict[str, float] = {best.means!r}\n"
        "#: How many phones of correct readings each mean is computed from.\n"
        f"PHONE_COUNT: dict[str, int] = {best.counts!r}\n"
        "#: A word is mispronounced when its phone-normalised GOP is below\n"
        "#: WORD_BAD - WORD_BAD_LENGTH / sqrt(its frames): short words get more room.\n"
        f"WORD_BAD = {best.bad[0]}\n"
        f"WORD_BAD_LENGTH = {best.bad[1]}\n"
        "#: ... or when one of its phones' normalised GOP is below this.\n"
        f"SOUND_BAD = {best.bad[2]}\n"
    )
    print(f"{OUT}: prior {best.prior}, {best.bad} (word, length, sound), {best.figures}")


if __name__ == "__main__":
    main()
