"""The bounded-memory alignment: the steps of the whole table, in a bounded amount of memory."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.evaluate import MAX_CELLS, evaluate_text
from speech.pronounce import cmu_dictionary, pronounce
from speech.scoring import align
from tests.scoring_oracle import full_table_align, long_text, misread
from tests.stages_helpers import DATA

tokens = st.lists(st.sampled_from(["a", "b", "c", "ð", "ə"]), max_size=40)


def reference_of(text: str) -> list[str]:
    return [t for w in pronounce(text) for t in w.ipa]


@settings(max_examples=300)
@given(tokens, tokens, st.integers(min_value=1, max_value=64))
def test_any_block_size_chooses_the_full_tables_steps(
    reference: list[str], actual: list[str], block_cells: int
) -> None:
    assert align(reference, actual, block_cells=block_cells) == full_table_align(reference, actual)


@pytest.mark.parametrize(("chars", "seed", "rate"), [(2_000, 1, 0.1), (1_200, 2, 0.5)])
@pytest.mark.parametrize("block_cells", [1_000, 50_000, None])
def test_long_texts_align_as_with_the_full_table(
    chars: int, seed: int, rate: float, block_cells: int | None
) -> None:
    reference = reference_of(long_text(chars))
    actual = misread(reference, seed, rate)
    kwargs = {} if block_cells is None else {"block_cells": block_cells}
    assert align(reference, actual, **kwargs) == full_table_align(reference, actual)
    assert align(actual, reference, **kwargs) == full_table_align(actual, reference)


def test_evaluations_are_those_recorded_before_the_change() -> None:
    # Recorded with the full-table alignment: accuracy, mistakes and per-word verdicts of
    # the previous method (the fallback without audio); the fields added since are not.
    cases = json.loads((DATA / "evaluations.json").read_text(encoding="utf-8"))
    assert len(cases) == 7
    for case in cases:
        result = evaluate_text(case["reference_text"], case["actual"])
        assert result is not None
        recorded = {k: v for k, v in dataclasses.asdict(result).items() if k in case["evaluation"]}
        assert recorded == case["evaluation"]
        assert result.method == "phonemes"


def test_a_long_evaluation_stays_within_a_few_megabytes() -> None:
    reference = reference_of(long_text(10_000))  # the longest reference text a task may have
    actual = misread(reference, 3)[: MAX_CELLS // len(reference)]
    cmu_dictionary()  # loaded once per process; not part of one evaluation's cost
    tracemalloc.start()
    try:
        result = evaluate_text(long_text(10_000), actual)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result is not None
    # The whole table alone would be len(reference) * len(actual) * 8 bytes: about 200 MB.
    assert peak < 32 * 2**20
