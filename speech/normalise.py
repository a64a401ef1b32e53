"""Reference text as a person reads it aloud: the words to expect, in order.

Case and punctuation go; inner apostrophes stay ("don't"); hyphens, slashes and
dashes split words. Numbers are read as words: cardinals up to the trillions
("1,204" -> "one thousand two hundred four"), decimals digit by digit after
"point", ordinals ("21st" -> "twenty first"), years from 1100 to 1999 in pairs
("1984" -> "nineteen eighty four"), a leading "$" or a trailing "%" read after the
number ("dollars", "percent"). Common abbreviations are read as their words
("Dr." -> "doctor", "Mr." -> "mister", "e.g." -> "for example", "&" -> "and").
Each spoken word keeps the written token it came from, so a mistake can point at
what the learner saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

#: Written abbreviation (lowercase, with its dots) -> the words read.
ABBREVIATIONS: dict[str, str] = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "st.": "saint",
    "prof.": "professor", "jr.": "junior", "sr.": "senior", "vs.": "versus",
    "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "no.": "number",
    "approx.": "approximately", "dept.": "department", "&": "and", "%": "percent",
    "mt.": "mount", "ft.": "feet", "km": "kilometres", "kg": "kilograms",
}  # fmt: skip

_TOKEN = re.compile(
    r"(?:[a-z]\.){2,}"  # e.g., i.e.
    r"|[a-z]+\.(?=\s|$)"  # a word with its full stop: Dr. (kept only if an abbreviation)
    r"|\$?[0-9][0-9,]*(?:\.[0-9]+)?(?:st|nd|rd|th)?%?"
    r"|[a-z]+(?:'[a-z]+)*"
    r"|&"
)


@dataclass(frozen=True)
class SpokenWord:
    """One word to hear, and the written token it comes from."""

    text: str
    written: str


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def cardinal(n: int) -> list[str]:
    """The words of a non-negative integer ("zero" for 0)."""
    if n == 0:
        return ["zero"]
    words: list[str] = []
    for scale, name in _SCALES:
        if n >= scale:
            words += [*cardinal(n // scale), name]
            n %= scale
    if n:
        words += _below_thousand(n)
    return words


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL:
        spoken = _ORDINAL[last]
    elif last.endswith("y"):
        spoken = last[:-1] + "ieth"
    else:
        spoken = last + "th"
    return [*words[:-1], spoken]


def number_words(token: str) -> list[str]:
    """How a written number is read (see the module docstring)."""
    dollars = token.startswith("$")
    percent = token.endswith("%")
    core = token.strip("$%")
    suffix = core[-2:] if core[-2:] in ("st", "nd", "rd", "th") else ""
    grouped = "," in core  # "1,204" is a quantity, never a year
    core = core[: len(core) - len(suffix)].replace(",", "")
    whole, _, decimals = core.partition(".")
    if not whole.isdigit() or len(whole) > 15:
        return [_ONES[int(c)] for c in core if c.isdigit()]
    n = int(whole)
    year = not (decimals or suffix or grouped or dollars or percent)
    if year and len(whole) == 4 and 1100 <= n <= 1999 and n % 100:
        words = [*_below_thousand(n // 100), *_below_thousand(n % 100)]
        if n % 100 < 10:
            words.insert(len(_below_thousand(n // 100)), "oh")
    else:
        words = cardinal(n)
    if suffix:
        words = _ordinal(words)
    if decimals:
        words += ["point", *(_ONES[int(c)] for c in decimals)]
    if dollars:
        words.append("dollar" if n == 1 and not decimals else "dollars")
    if percent:
        words.append("percent")
    return words


def spoken_words(text: str) -> list[SpokenWord]:
    """The words a reader of ``text`` says, in order."""
    spoken: list[SpokenWord] = []
    lowered = text.lower().replace("’", "'").replace("\u2014", " ").replace("\u2013", " ")
    for token in _TOKEN.findall(re.sub(r"[-/]", " ", lowered)):
        if token in ABBREVIATIONS:
            words = ABBREVIATIONS[token].split()
        elif token[0].isdigit() or token[0] == "$":
            words = number_words(token)
        elif token.endswith("."):
            words = [w for w in token.split(".") if w]
        else:
            words = [token]
        spoken += [SpokenWord(w, token) for w in words]
    return spoken
