"""Pick the verdicts' thresholds (speech/gop_thresholds.py) on the corpus's calibration split.

The split (tests/pron_corpus.py): the human reading's even clauses (read as written,
and with k = 1, 2, 3 words of the text replaced) and four espeak-ng voices the held-out
split never uses (correct, and with one sound substituted). Every recording is
transcribed and its posteriors computed once; then each grid point of
(``SUBSTITUTE_MARGIN``, ``ABSENT``) re-runs the alignment and the verdicts. Kept: the
point with the most replaced and substituted words flagged among those that flag at
most ``NATIVE_FLAGS`` of the native words and ``ESPEAK_FLAGS`` of the correct espeak
words (the loosest such limits met, when none meets them). bench/pronunciation.py
reports the held-out split. Prints JSON lines, then the choice; rewrites nothing
(copy the choice into speech/gop_thresholds.py).

    python bench/pron_calibrate.py
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pronunciation as bench  # noqa: E402  (bench/pronunciation.py, beside this script)

from speech import gop, phone_model, verdicts  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402

NATIVE_FLAGS = 0.02
ESPEAK_FLAGS = 0.10
MARGINS = [0.0, 1.0, 2.0, 3.0, 4.0]
ABSENTS = [-3.0, -4.0, -5.0, -6.0, -8.0]


def _on_disk(name: str, compute: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``compute`` of a recording, kept in memory and under ``CALIBRATE_CACHE``."""
    folder = Path(os.environ.get("CALIBRATE_CACHE", "/tmp/pron_calibrate"))
    folder.mkdir(parents=True, exist_ok=True)

    @functools.lru_cache(maxsize=2048)
    def cached(pcm: bytes) -> Any:
        path = folder / f"{name}-{hashlib.sha256(pcm).hexdigest()[:24]}.pickle"
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = compute(pcm)
        path.write_bytes(pickle.dumps(value))
        return value

    return cached


def _cache_posteriors() -> None:
    """The model's posteriors and Whisper's words computed once per recording (the grid
    re-runs the rest)."""
    model = phone_model.phone_model()
    original = model.posteriors
    cached = _on_disk("posteriors", lambda pcm: original(phone_model.samples_of(pcm)))
    model.posteriors = lambda samples: cached(  # type: ignore[method-assign]
        (samples * 32768.0).astype("<i2").tobytes()
    )
    bench.transcribed = _on_disk("words", bench.transcribed.__wrapped__)


def _readings() -> list[tuple[str, bytes, str, set[int]]]:
    """(kind, audio, text, indices of the words that are wrong)."""
    out: list[tuple[str, bytes, str, set[int]]] = []
    human = corpus.human_sentences()
    for i in corpus.CALIBRATION_CLAUSES:
        rec = human[i]
        out.append(("native", rec.pcm, rec.text, set()))
        for k in (1, 2, 3):
            text, positions = corpus.replaced(rec.text, k, 100 + i)
            out.append(("replaced", rec.pcm, text, set(positions)))
    for r in corpus.espeak_renderings(corpus.CALIBRATION_CLAUSES, corpus.CALIBRATION_VOICES):
        wrong = set() if r.word is None else {r.word}
        out.append(("correct" if r.word is None else "substituted", r.pcm, r.text, wrong))
    return out


def _figures(readings: list[tuple[str, bytes, str, set[int]]]) -> dict[str, Any]:
    counts: dict[str, list[int]] = {}
    for kind, pcm, text, wrong in readings:
        flags = bench.flags(bench.evaluated(pcm, text))
        hit = counts.setdefault(kind, [0, 0])
        if kind in ("native", "correct"):
            hit[0] += sum(flags)
            hit[1] += len(flags)
        else:
            hit[0] += sum(flags[w] for w in wrong)
            hit[1] += len(wrong)
    return {kind: round(h / n, 3) for kind, (h, n) in counts.items()}


def _set(margin: float, absent: float) -> None:
    gop.SUBSTITUTE_MARGIN = margin
    gop.ABSENT = absent
    verdicts.ABSENT = absent


def main() -> None:
    _cache_posteriors()
    readings = _readings()
    results = []
    for margin in MARGINS:
        for absent in ABSENTS:
            _set(margin, absent)
            figures = _figures(readings)
            results.append(((margin, absent), figures))
            print(json.dumps({"margin": margin, "absent": absent, **figures}), flush=True)
    for slack in (1, 2, 3, 5):
        usable = [
            r
            for r in results
            if r[1]["native"] <= NATIVE_FLAGS * slack and r[1]["correct"] <= ESPEAK_FLAGS * slack
        ]
        if usable:
            best = max(usable, key=lambda r: r[1]["replaced"] + r[1]["substituted"])
            print(json.dumps({"chosen": best[0], "limits_times": slack, **best[1]}))
            return


if __name__ == "__main__":
    main()
