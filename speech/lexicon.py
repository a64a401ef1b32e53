"""Expected sounds in the phoneme model's symbols: the CMU dictionary's pronunciations mapped
onto what the model emits (pure, but for the dictionary it loads).

The CMU dictionary writes General American in ARPAbet; the model (``phone_model.py``)
writes IPA with conventions of its own ("of" /ɔf/, ʌ and ə alike, ɝ or ɚ, g). So each
dictionary phone is a **slot** that accepts a small set of the model's symbols: the
sounds a native speaker of some accent of English says for it (AA is ɑ, ɔ or ɒ; T may be
a flap or a glottal stop; an unstressed vowel may be reduced). A learner substitution
(``confusions.py``) is never in the set it replaces: θ is never s.

A word's variants are the dictionary's, each one's non-rhotic form (an R after a vowel
and before none unsaid: "short" /ʃɔt/), and the weak forms of the function words
(``WEAK_FORMS``): none of them is a mistake.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .confusions import VOWELS
from .ipa import to_ipa
from .pronounce import non_rhotic, spell, stressed_variants

#: ARPAbet (no stress) -> the model's symbols accepted for it, its canonical one first.
ACCEPTED: dict[str, tuple[str, ...]] = {
    "AA": ("ɑ", "ɔ", "ɒ", "a"), "AE": ("æ", "a"), "AH": ("ʌ", "ə", "ɐ"),
    "AO": ("ɔ", "ɑ", "ɒ"), "AW": ("aʊ",), "AY": ("aɪ",), "B": ("b",), "CH": ("t͡ʃ",),
    "D": ("d", "ɾ"), "DH": ("ð",), "EH": ("ɛ", "e"), "ER": ("ɝ", "ɚ", "ɜ", "ə"),
    "EY": ("eɪ",), "F": ("f",), "G": ("g", "ɡ"), "HH": ("h",), "IH": ("ɪ",),
    "IY": ("i",), "JH": ("d͡ʒ",), "K": ("k",), "L": ("l", "ɫ"), "M": ("m",),
    "N": ("n",), "NG": ("ŋ",), "OW": ("oʊ", "o"), "OY": ("ɔɪ",), "P": ("p",),
    "R": ("ɹ", "r", "ɻ"), "S": ("s",), "SH": ("ʃ",), "T": ("t", "ɾ", "ʔ"),
    "TH": ("θ",), "UH": ("ʊ",), "UW": ("u", "ʉ"), "V": ("v",), "W": ("w",),
    "Y": ("j",), "Z": ("z",), "ZH": ("ʒ",),
}  # fmt: skip
#: An unstressed vowel (stress 0) may also be reduced to these. The tense/lax pairs
#: (ɪ/i, ʊ/u, ɛ/eɪ, æ/ɛ) stay apart: a learner who merges them is told.
REDUCED = ("ə", "ɪ", "ɐ")
#: Weak forms of function words (ARPAbet), beside the dictionary's.
WEAK_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "of": (("AH0", "V"), ("AH0",), ("AO1", "F"), ("AA1", "F")),
    "the": (("DH", "AH0"), ("DH", "IY0")),
    "a": (("AH0",), ("EY1",)),
    "an": (("AH0", "N"),),
    "and": (("AH0", "N", "D"), ("AH0", "N"), ("N",)),
    "to": (("T", "AH0"), ("T", "UW1")),
    "for": (("F", "ER0"), ("F", "AO1")),
    "was": (("W", "AH0", "Z"), ("W", "AO1", "Z")),
    "or": (("ER0",), ("AO1",)),
    "at": (("AH0", "T"),),
    "that": (("DH", "AH0", "T"),),
    "from": (("F", "R", "AH0", "M"),),
    "them": (("DH", "AH0", "M"),),
    "can": (("K", "AH0", "N"),),
    "had": (("HH", "AH0", "D"), ("AH0", "D")),
    "have": (("HH", "AH0", "V"), ("AH0", "V")),
    "we": (("W", "IH0"),),
    "some": (("S", "AH0", "M"),),
    "us": (("AH0", "S"),),
}


@dataclass(frozen=True)
class Slot:
    """One expected sound: its dictionary phone and the model's symbols that count as it."""

    phone: str
    accepted: frozenset[str]
    #: Shown to the learner: the General American IPA of the dictionary phone.
    ipa: str
    #: An unstressed vowel: natives reduce, shorten or drop it, so it is scored but never
    #: flagged (what a learner is told about is the stressed vowels and the consonants).
    reduced: bool = False


@functools.cache
def slot(phone: str) -> Slot:
    """The slot of an ARPAbet phone (with or without stress)."""
    bare = phone.rstrip("012")
    accepted = set(ACCEPTED.get(bare, ()))
    reduced = phone.endswith("0") and bare in VOWELS
    if reduced:
        accepted |= set(REDUCED)
    return Slot(bare, frozenset(accepted), to_ipa(bare) or bare.lower(), reduced)


@dataclass(frozen=True)
class Entry:
    """A spoken word's variants (tuples of slots; the first is the canonical one) and
    whether the dictionary had it (else letter rules spelled it)."""

    word: str
    variants: tuple[tuple[Slot, ...], ...]
    known: bool

    @property
    def canonical(self) -> tuple[str, ...]:
        """The canonical pronunciation's ARPAbet phones (no stress)."""
        return tuple(s.phone for s in self.variants[0])


def syllabic(phones: tuple[str, ...]) -> tuple[str, ...] | None:
    """The schwa before a final L, N or M unsaid ("evil" /ivl/): a syllabic consonant."""
    if len(phones) > 2 and phones[-2] == "AH0" and phones[-1] in ("L", "N", "M"):
        return (*phones[:-2], phones[-1])
    return None


@functools.cache
def entry(word: str) -> Entry:
    """The expected pronunciations of one normalised word."""
    known = stressed_variants().get(word)
    pronunciations = list(known or (spell(word),))
    pronunciations += [v for p in pronunciations if (v := non_rhotic(p)) is not None]
    pronunciations += [v for p in pronunciations if (v := syllabic(p)) is not None]
    pronunciations += list(WEAK_FORMS.get(word, ()))
    variants = [tuple(slot(p) for p in phones) for phones in pronunciations if phones]
    unique = tuple(dict.fromkeys(variants)) or ((slot("AH0"),),)
    return Entry(word, unique, known is not None)
