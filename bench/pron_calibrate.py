"""Pick the verdicts' thresholds (speech/gop_thresholds.py) on the corpus's calibration split.

The split (tests/pron_corpus.py): the human reading's even clauses (read as written,
and with k = 1, 2, 3 words of the text replaced) and two of the four espeak-ng voices the
held-out split never uses (correct, and with one sound substituted). Every recording is
transcribed and its posteriors computed once (kept under ``BENCH_CACHE``, default
/tmp/pron_calibrate); then each grid point of
(``SUBSTITUTE_MARGIN``, ``ABSENT``) re-runs the alignment and the verdicts. Kept: the
point with the most replaced and substituted words flagged (then the fewest native
words) among those that flag at most ``ESPEAK_FLAGS`` of the correct espeak-ng words: a
false alarm costs a learner's trust more than a missed error. bench/pronunciation.py
reports the held-out split. Prints JSON lines, then the choice; rewrites nothing
(copy the choice into speech/gop_thresholds.py).

    python bench/pron_calibrate.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pronunciation as bench  # noqa: E402  (bench/pronunciation.py, beside this script)

from speech import gop, verdicts  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402

ESPEAK_FLAGS = 0.10
MARGINS = [0.0, 1.5, 3.0]
ABSENTS = [-3.0, -4.5, -6.0]
#: The calibration split's espeak-ng voices used (``CALIBRATE_VOICES=4``: all four).
VOICES = corpus.CALIBRATION_VOICES[: int(os.environ.get("CALIBRATE_VOICES", "2"))]


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
    for r in corpus.espeak_renderings(corpus.CALIBRATION_CLAUSES, VOICES):
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
    bench.cache_model_outputs()
    readings = _readings()
    results = []
    for margin in MARGINS:
        for absent in ABSENTS:
            _set(margin, absent)
            figures = _figures(readings)
            results.append(((margin, absent), figures))
            print(json.dumps({"margin": margin, "absent": absent, **figures}), flush=True)
    usable = [r for r in results if r[1]["correct"] <= ESPEAK_FLAGS] or results
    best = max(usable, key=lambda r: (r[1]["replaced"] + r[1]["substituted"], -r[1]["native"]))
    print(json.dumps({"chosen": best[0], **best[1]}))


if __name__ == "__main__":
    main()
