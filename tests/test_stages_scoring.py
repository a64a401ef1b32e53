"""Scoring: the ILPS formula, the mistakes' shape, and their agreement with the alignment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speech.scoring import accuracy, align, per_word, score
from tests.word_errors import word_errors

tokens = st.lists(st.sampled_from(["a", "b", "c", "ð", "ə", "aɪ"]), max_size=12)


@given(tokens)
def test_identical_sequences_score_100_without_mistakes(reference: list[str]) -> None:
    result = score(reference, reference)
    assert result.accuracy == 100.0
    assert result.mistakes == []


@given(tokens, tokens)
def test_mistakes_agree_with_the_alignment(reference: list[str], actual: list[str]) -> None:
    result = score(reference, actual)
    steps = result.steps
    assert [s.ref for s in steps if s.ref is not None] == list(range(len(reference)))
    assert [s.act for s in steps if s.act is not None] == list(range(len(actual)))
    assert sum(s.kind != "Match" for s in steps) == word_errors(reference, actual)
    kinds = {"Replacement": (True, True), "Insertion": (False, True), "Deletion": (True, False)}
    for step, mistake in zip([s for s in steps if s.kind != "Match"], result.mistakes, strict=True):
        assert mistake["type"] == step.kind
        assert (mistake["reference"] is not None, mistake["actual"] is not None) == kinds[step.kind]
        if step.ref is not None:
            assert mistake["reference"] == {"position": step.ref, "value": reference[step.ref]}
        if step.act is not None:
            assert mistake["actual"] == {"position": step.act, "value": actual[step.act]}
        if step.kind == "Replacement":
            assert reference[step.ref or 0] != actual[step.act or 0]
    for step in steps:
        if step.kind == "Match":
            assert reference[step.ref or 0] == actual[step.act or 0]
    assert result.accuracy == accuracy(result.matches, len(reference), len(actual))
    assert 0 <= result.accuracy <= 100


@pytest.mark.parametrize(
    ("reference", "actual", "expected"),
    [
        # M=3, R=4, A=3: 3 / (4 * (1 + 1/4)) = 3/5
        ("b ɛ s t", "b ɛ s", 60.0),
        # M=2, R=3, A=4: 2 / (3 * (1 + 1/3)) = 2/4
        ("k æ t", "k ɑ t s", 50.0),
        # M=2, R=3, A=3: 2/3
        ("k æ t", "k ɑ t", 66.67),
        # M=0: nothing in common
        ("a b", "c d", 0.0),
        # M=1 (one of "a"/"b" moves), R=2, A=2: 1/2
        ("a b", "b a", 50.0),
        # M=2, R=2, A=6: 2 / (2 * (1 + 4/2)) = 1/3
        ("a b", "x a y b z w", 33.33),
        ("", "", 100.0),
        ("", "a", 0.0),
        ("a", "", 0.0),
    ],
)
def test_formula_on_hand_worked_examples(reference: str, actual: str, expected: float) -> None:
    assert score(reference.split(), actual.split()).accuracy == expected


def test_mistakes_have_the_ilps_shape() -> None:
    result = score("k æ t".split(), "k ɑ t s".split())
    assert result.mistakes == [
        {
            "reference": {"position": 1, "value": "æ"},
            "actual": {"position": 1, "value": "ɑ"},
            "type": "Replacement",
        },
        {"reference": None, "actual": {"position": 3, "value": "s"}, "type": "Insertion"},
    ]
    deletion = score("b ɛ s t".split(), "b ɛ s".split()).mistakes
    assert deletion == [
        {"reference": {"position": 3, "value": "t"}, "actual": None, "type": "Deletion"}
    ]


def test_per_word_view() -> None:
    words = [("the", ("ð", "ə")), ("best", ("b", "ɛ", "s", "t")), ("cat", ("k", "æ", "t"))]
    actual = "ð ə b ɛ s k æ x t".split()
    view = per_word(words, align([t for _, ipa in words for t in ipa], actual))
    assert view == [
        {"word": "the", "position": 0, "ipa": "ð ə", "mistakes": 0, "correct": True},
        {"word": "best", "position": 1, "ipa": "b ɛ s t", "mistakes": 1, "correct": False},
        {"word": "cat", "position": 2, "ipa": "k æ t", "mistakes": 1, "correct": False},
    ]


def test_insertions_between_words_belong_to_no_word() -> None:
    words = [("a", ("a",)), ("b", ("b",))]
    view = per_word(words, align(["a", "b"], ["a", "x", "b"]))
    assert [w["mistakes"] for w in view] == [0, 0]
