"""What a change costs: admission and end to end, this checkout against an earlier one.

    git worktree add --detach /tmp/before <commit>
    python bench/before_after.py /tmp/before

Runs ``bench/admission.py`` (its ``idle`` figure: admission's own work) and
``bench/e2e_remote.py`` (``completed_per_s``) of each checkout, one run at a time,
alternating before/after so that a machine that slows down mid-way weighs on both
alike (``BENCH_RUNS`` rounds, 3 by default; each script run with ``BENCH_RUNS=1``).
Both use this venv's Python, and each script runs its own tree's ``run.py``.
Prints medians, the after/before ratios, and every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import RUNS, emit, machine, median

AFTER = Path(__file__).resolve().parents[1]


def _run(tree: Path, script: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_RUNS": "1"}
    done = subprocess.run(
        [sys.executable, str(tree / "bench" / script)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _figures(tree: Path) -> dict[str, float]:
    admission = _run(tree, "admission.py")
    e2e = _run(tree, "e2e_remote.py")
    return {
        "admission_idle_rps": admission["idle"]["rps"],
        "admission_idle_p99_ms": admission["idle"]["p99_ms"],
        "e2e_completed_per_s": e2e["completed_per_s"],
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/before_after.py <checkout of the earlier commit>")
    before = Path(sys.argv[1]).resolve()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for round_ in range(RUNS):
        for name, tree in (("before", before), ("after", AFTER)):
            print(f"round {round_ + 1}/{RUNS}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_figures(tree))
    medians = {
        name: {key: median([r[key] for r in found]) for key in found[0]}
        for name, found in runs.items()
    }
    ratio = {
        key: round(medians["after"][key] / medians["before"][key], 3)
        for key in medians["after"]
        if medians["before"][key]
    }
    emit({"machine": machine(), "medians": medians, "after_over_before": ratio, "runs": runs})


if __name__ == "__main__":
    main()
