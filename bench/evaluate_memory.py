"""Peak memory and time of the embedded evaluation's alignment, against the old full table.

The longest reference a task may have (10,000 characters of Dickens, 6,520 dictionary
phonemes) against a reading of matching length (the same phonemes, a tenth of them
misread: 42.6 million cells), through ``speech.scoring.score``; and the largest input
``evaluate_text`` accepts (``MAX_CELLS``). "old" is the full-table alignment kept in
``tests/scoring_oracle.py``, measured in the same run. Every measurement runs in a
fresh process (peak RSS is per process): the peak resident set above the process's
resident set just before, and the seconds. Median of 3 (``BENCH_RUNS``). Prints JSON.

    python bench/evaluate_memory.py
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CASES = ("text_10000_vs_matching", "largest_accepted")


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _one(algorithm: str, case: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    sys.path.insert(0, str(ROOT))
    from speech import scoring
    from speech.evaluate import MAX_CELLS, evaluate_text
    from speech.pronounce import cmu_dictionary, pronounce
    from tests.scoring_oracle import full_table_align, long_text, misread

    if algorithm == "old":
        scoring.align = full_table_align  # type: ignore[assignment]
    cmu_dictionary()
    text = long_text(10_000)
    reference = [t for w in pronounce(text) for t in w.ipa]
    actual = misread(reference, 3)
    if case == "largest_accepted":
        actual = actual[: MAX_CELLS // len(reference)]
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from here
    before = _kib("VmRSS")
    started = time.perf_counter()
    if case == "largest_accepted":
        evaluation = evaluate_text(text, actual)
        assert evaluation is not None
        accuracy, mistakes = evaluation.accuracy, evaluation.mistakes
    else:
        result = scoring.score(reference, actual)
        accuracy, mistakes = result.accuracy, result.mistakes
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(json.dumps(mistakes, ensure_ascii=False).encode()).hexdigest()
    return {
        "cells": len(reference) * len(actual),
        "seconds": round(seconds, 3),
        "peak_mib": round((_kib("VmHWM") - before) / 1024, 1),
        "accuracy": accuracy,
        "mistakes_sha256": digest[:16],
    }


def _measure(algorithm: str, case: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", algorithm, case],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    report: dict[str, Any] = {"runs": RUNS}
    for case in CASES:
        runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for _ in range(RUNS):
            for algorithm in ("old", "new"):  # interleaved: the machine's speed drifts
                runs[algorithm].append(_measure(algorithm, case))
        summary: dict[str, Any] = {"cells": runs["new"][0]["cells"]}
        for algorithm, each in runs.items():
            summary[algorithm] = {
                "seconds": round(statistics.median(r["seconds"] for r in each), 3),
                "peak_mib": round(statistics.median(r["peak_mib"] for r in each), 1),
                "runs": [{"seconds": r["seconds"], "peak_mib": r["peak_mib"]} for r in each],
            }
        outcomes = {(r["accuracy"], r["mistakes_sha256"]) for rs in runs.values() for r in rs}
        summary["same_result"] = len(outcomes) == 1
        report[case] = summary
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(_one(sys.argv[2], sys.argv[3])))
    else:
        main()
