"""Error variants (speech/confusions.py): the pure rules, their parse and verdicts, and an
espeak-ng rendering with one substituted sound."""

from __future__ import annotations

import pytest

from speech import forced
from speech.confusions import CONFUSIONS, ErrorVariant, apply, error_variants
from speech.evaluate import evaluate_reading
from speech.forced import AlignedPhone, Alignment, _parse_taken
from speech.verdicts import ReferenceWord, ilps_mistakes, judge
from tests import pron_corpus as corpus


def test_apply_replaces_or_drops_one_phone() -> None:
    assert apply(("TH", "IH", "NG"), 0, "S") == ("S", "IH", "NG")
    assert apply(("TH", "IH", "NG"), 2, "") == ("TH", "IH")
    assert apply(("AH",), 0, "") == ()


def test_error_variants_of_a_pronunciation() -> None:
    thing = error_variants([("TH", "IH", "NG")], cap=20)
    said = {v.phones: (v.position, v.heard) for v in thing}
    assert said[("S", "IH", "NG")] == (0, "S")
    assert said[("T", "IH", "NG")] == (0, "T")
    assert said[("TH", "IY", "NG")] == (1, "IY")
    assert said[("TH", "IH", "N")] == (2, "N")
    assert said[("TH", "IH")] == (2, "")  # the final consonant dropped
    assert all(v.expected == ("TH", "IH", "NG") for v in thing)
    # Final devoicing only at the end; a final R is an accent, not a dropped sound.
    assert ("S", "UW") not in {v.phones for v in error_variants([("Z", "UW")], cap=20)}
    assert ("F", "AA") not in {v.phones for v in error_variants([("F", "AA", "R")], cap=20)}
    assert ("B", "IH", "S") in {v.phones for v in error_variants([("B", "IH", "Z")], cap=20)}
    # Never a dictionary pronunciation, never empty, never more than the cap.
    the = error_variants([("DH", "AH"), ("DH", "IY")], cap=20)
    assert all(v.phones not in (("DH", "AH"), ("DH", "IY")) for v in the)
    assert error_variants([("HH",)], cap=20) == []
    long = ("AH", "TH", "AO", "R", "AH", "T", "IY", "Z")
    capped = error_variants([long], cap=4)
    assert len(capped) == 4
    # Past the cap, positions take turns: four different sounds get a competitor.
    assert len({v.position for v in capped}) == 4
    assert all(len(v.phones) in (len(long), len(long) - 1) for v in capped)
    assert all(c.source != c.target for c in CONFUSIONS)


def test_the_parse_reports_the_variant_each_word_took() -> None:
    variants: list[list[tuple[str, ...]]] = [
        [("DH", "AH"), ("D", "AH")],
        [("K", "AE", "T"), ("K", "AE")],
    ]
    parsed = _parse_taken(variants, ["D", "AH", "K", "AE", "T"], plain=[1, 1])
    assert parsed == ([0, 0, 1, 1, 1], [1, 0])
    # Of two parses, the one with fewer error variants.
    ambiguous: list[list[tuple[str, ...]]] = [[("AH",), ("AH", "T")], [("T", "AH"), ("AH",)]]
    assert _parse_taken(ambiguous, ["AH", "T", "AH"], plain=[1, 1]) == ([0, 1, 1], [0, 0])


def _phone(word: int, phone: str, start: int) -> AlignedPhone:
    return AlignedPhone(word, phone, start, 10, -0.5, phone, 0.0)


def test_a_word_that_took_an_error_variant_is_mispronounced() -> None:
    refs = [ReferenceWord("thin", "thin", ("θ", "ɪ", "n"), True)]
    substituted = ErrorVariant(("S", "IH", "N"), ("TH", "IH", "N"), 0, "S")
    phones = (_phone(0, "S", 0), _phone(0, "IH", 10), _phone(0, "N", 20))
    word = judge(refs, Alignment(phones, frozenset(), (), 30, {0: substituted})).words[0]
    assert (word["verdict"], word["expected"], word["heard"]) == ("mispronounced", "θ ɪ n", "s ɪ n")
    assert word["phonemes"][0] == {"ipa": "θ", "start": 0.0, "end": 0.1, "score": 0.0, "heard": "s"}
    assert all("heard" not in p for p in word["phonemes"][1:])
    assert word["mistakes"] == 1
    assert word["correct"] is False
    mistakes, reference = ilps_mistakes([word])
    assert reference == "θ ɪ n"
    assert [m["type"] for m in mistakes] == ["Replacement"]
    assert mistakes[0]["actual"]["value"] == "s"

    dropped = ErrorVariant(("TH", "IH"), ("TH", "IH", "N"), 2, "")
    short = (_phone(0, "TH", 0), _phone(0, "IH", 10))
    word = judge(refs, Alignment(short, frozenset(), (), 20, {0: dropped})).words[0]
    assert (word["verdict"], word["heard"]) == ("mispronounced", "θ ɪ")
    assert word["phonemes"][2] == {"ipa": "n", "start": 0.2, "end": 0.2, "score": 0.0, "heard": ""}
    mistakes, _ = ilps_mistakes([word])
    assert [(m["type"], m["reference"]["value"]) for m in mistakes] == [("Deletion", "n")]


@pytest.mark.skipif(not corpus.espeak_available(), reason="espeak-ng is not installed")
def test_a_rendering_with_th_said_as_s_is_flagged_with_what_was_heard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On, whatever the calibrated default (bench/README.md has the held-out figures).
    monkeypatch.setattr(forced, "ERROR_PRIOR", forced.ERROR_PRIOR or 1e-15)
    clause = corpus.CLAUSES[8]
    words = corpus._words(clause)
    k = words.index("authorities")
    phonemes = [corpus.word_phonemes(w, "en-us") for w in words]
    said = list(phonemes)
    changed = corpus.substitute(phonemes[k], "T", "s")
    assert changed is not None
    said[k] = changed
    result = evaluate_reading(corpus.speak(said, "en-us"), clause)
    assert result is not None
    word = result.words[k]
    assert word["verdict"] == "mispronounced"
    assert word["expected"].split()[1] == "θ"
    assert word["heard"].split()[1] == "s"
    assert word["phonemes"][1]["ipa"] == "θ"
    assert word["phonemes"][1]["heard"] == "s"
    assert any(m["reference"]["value"] == "θ" for m in result.mistakes)
