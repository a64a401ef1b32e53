"""How far the embedded pronunciation scores can be trusted, on the evaluation corpus.

The corpus (tests/pron_corpus.py, provenance in tests/data/README.md): the human
reading cut into clauses; the same with k words of the text replaced; espeak-ng
voices, correct and with one sound substituted; one clause in every codec. Each
figure is measured for the forced-alignment scorer ("gop") and, in the same run, the
previous method ("previous": the phone loop's IPA against the dictionary's).
A word is "flagged" when its verdict is not ``correct``. Prints JSON.

The headline figures are on the held-out split (the odd clauses; the espeak-ng voices of
``corpus.VOICES``), which the calibration (speech/gop_calibration.py, from
bench/pron_calibrate.py on the even clauses and other voices) never saw; the same
figures on the calibration split are under ``calibration_split``, to show overfitting.

    python bench/pronunciation.py            # BENCH_QUICK=1: fewer espeak renderings
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import long_reading  # noqa: E402  (bench/long_reading.py, beside this script)

from speech.base import SAMPLE_RATE, AudioInput, PermanentStageError  # noqa: E402
from speech.decode import decode_audio  # noqa: E402
from speech.evaluate import evaluate_reading, evaluate_text  # noqa: E402
from speech.normalise import spoken_words  # noqa: E402
from speech.recognise import recognise_segment  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402
from tests.stages_helpers import android_pcm, encode  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"


FAILURES: list[str] = []


def gop_flags(pcm: bytes, text: str, cost: list[float]) -> tuple[list[bool], float, Any]:
    """The new scorer's flags; a recording it cannot align counts as every word flagged
    (and is listed in ``alignment_failures``: the service falls back to the previous
    method there)."""
    started = time.process_time()
    try:
        result = evaluate_reading(pcm, text)
    except PermanentStageError:
        FAILURES.append(text)
        n = len(spoken_words(text))
        return [True] * n, 0.0, None
    finally:
        cost.append(time.process_time() - started)
    assert result is not None
    return [w["verdict"] != "correct" for w in result.words], result.accuracy, result


def previous_flags(pcm: bytes, text: str) -> tuple[list[bool], float]:
    phonemes = [p.ipa for p in recognise_segment(pcm, 0.0)[1]]
    result = evaluate_text(text, phonemes)
    assert result is not None
    return [not w["correct"] for w in result.words], result.accuracy


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _human(clauses: tuple[int, ...]) -> list[corpus.Recording]:
    recordings = corpus.human_sentences()
    return [recordings[i] for i in clauses]


def native(cost: list[float], clauses: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seconds = 0.0
    for method in ("gop", "previous"):
        flagged = words = 0
        accuracies: list[float] = []
        confusions: Counter[str] = Counter()
        for rec in _human(clauses):
            if method == "gop":
                flags, accuracy, result = gop_flags(rec.pcm, rec.text, cost)
                seconds += len(rec.pcm) / 2 / SAMPLE_RATE
                for w in result.words if result else []:
                    if w["verdict"] != "correct":
                        confusions[f"{w['word']}:{w['verdict']}"] += 1
            else:
                flags, accuracy = previous_flags(rec.pcm, rec.text)
            flagged += sum(flags)
            words += len(flags)
            accuracies.append(accuracy)
        out[method] = {
            "words": words,
            "correct_percent": _share(words - flagged, words),
            "median_accuracy": statistics.median(accuracies),
            "accuracies": accuracies,
        }
        if method == "gop":
            out[method]["flagged_words"] = dict(confusions.most_common())
    out["audio_seconds"] = round(seconds, 2)
    return out


def replacements(clauses: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("gop", "previous"):
        per_k: dict[str, Any] = {}
        for k in (1, 2, 3):
            hits = replaced_total = flagged_total = 0
            for i, rec in zip(clauses, _human(clauses), strict=True):
                for seed in (1, 2) if not QUICK else (1,):
                    text, positions = corpus.replaced(rec.text, k, seed * 100 + i)
                    if method == "gop":
                        flags, _, _ = gop_flags(rec.pcm, text, [])
                    else:
                        flags, _ = previous_flags(rec.pcm, text)
                    hits += sum(flags[p] for p in positions)
                    replaced_total += len(positions)
                    flagged_total += sum(flags)
            per_k[str(k)] = {
                "replaced": replaced_total,
                "flagged": flagged_total,
                "recall": _share(hits, replaced_total),
                "precision": _share(hits, flagged_total),
            }
        out[method] = per_k
    return out


def substitutions(
    cost: list[float], clauses: tuple[int, ...], voices: tuple[str, ...]
) -> dict[str, Any]:
    if not corpus.espeak_available():
        return {"skipped": "espeak-ng is not installed"}
    renderings = corpus.espeak_renderings(clauses[:2] if QUICK else clauses, voices)
    out: dict[str, Any] = {"renderings": len(renderings)}
    for method in ("gop", "previous"):
        false_alarms = correct_words = 0
        by_kind: dict[str, list[int]] = {}
        sound_hits = 0
        for r in renderings:
            if method == "gop":
                flags, _, result = gop_flags(r.pcm, r.text, cost)
            else:
                flags, _ = previous_flags(r.pcm, r.text)
                result = None
            if r.word is None:
                false_alarms += sum(flags)
                correct_words += len(flags)
                continue
            kind = by_kind.setdefault(r.substitution or "", [0, 0])
            kind[0] += flags[r.word]
            kind[1] += 1
            if result is not None and r.word < len(result.words):
                sound_hits += any("heard" in p for p in result.words[r.word]["phonemes"])
        substituted = sum(n for _, n in by_kind.values())
        out[method] = {
            "word_recall": _share(sum(h for h, _ in by_kind.values()), substituted),
            "false_alarm_percent": _share(false_alarms, correct_words),
            "by_substitution": {k: _share(h, n) for k, (h, n) in by_kind.items()},
        }
        if method == "gop":
            out[method]["sound_recall"] = _share(sound_hits, substituted)
    return out


def codecs(cost: list[float]) -> dict[str, Any]:
    rec = corpus.human_sentences()[corpus.HELD_OUT_CLAUSES[0]]
    samples = corpus.samples(rec.pcm)
    files = {
        "wav": ("audio/wav", encode(samples, SAMPLE_RATE, "wav", "pcm_s16le")),
        "mp3": ("audio/mpeg", encode(samples, SAMPLE_RATE, "mp3", "libmp3lame")),
        "ogg_opus": ("audio/ogg", encode(samples, SAMPLE_RATE, "ogg", "libopus", 48_000)),
        "webm_opus": ("audio/webm", encode(samples, SAMPLE_RATE, "webm", "libopus", 48_000)),
        "m4a_aac": ("audio/mp4", encode(samples, SAMPLE_RATE, "mp4", "aac")),
        "android_pcm": ("application/octet-stream", android_pcm(samples, SAMPLE_RATE)),
    }
    out: dict[str, Any] = {}
    for method in ("gop", "previous"):
        accuracies = {}
        for name, (kind, data) in files.items():
            filename = "audio_record.pcm" if name == "android_pcm" else f"a.{name}"
            pcm = decode_audio(AudioInput(data, kind, filename), 300).pcm
            if method == "gop":
                accuracies[name] = gop_flags(pcm, rec.text, cost)[1]
            else:
                accuracies[name] = previous_flags(pcm, rec.text)[1]
        values = list(accuracies.values())
        out[method] = {"accuracy": accuracies, "spread": round(max(values) - min(values), 2)}
    return out


def main() -> None:
    cost: list[float] = []
    held = corpus.HELD_OUT_CLAUSES
    report: dict[str, Any] = {"split": "held-out", "native": native(cost, held)}
    seconds = report["native"]["audio_seconds"]
    report["cost_seconds_per_audio_second"] = round(sum(cost) / seconds, 3)
    report["replaced_words"] = replacements(held)
    report["substituted_sounds"] = substitutions(cost, held, corpus.VOICES)
    report["codecs"] = codecs(cost)
    calibration = corpus.CALIBRATION_CLAUSES
    report["calibration_split"] = {
        "native": native([], calibration),
        "replaced_words": replacements(calibration),
        "substituted_sounds": substitutions([], calibration, corpus.CALIBRATION_VOICES),
    }
    report["alignment_failures"] = len(FAILURES)
    if not QUICK:  # about 3 minutes: recognising 355 s of audio, evaluating 1,020 s
        report["long_readings"] = long_reading.main()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
