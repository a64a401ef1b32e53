"""ARPAbet (the phone set of the CMU dictionary and pocketsphinx's en-US model) to IPA."""

from __future__ import annotations

#: Without stress marks (the en-US model has none), AH is written as the schwa.
ARPABET_TO_IPA: dict[str, str] = {
    "AA": "ɑ", "AE": "æ", "AH": "ə", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ",
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "EH": "ɛ", "ER": "ɝ",
    "EY": "eɪ", "F": "f", "G": "ɡ", "HH": "h", "IH": "ɪ", "IY": "i",
    "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ",
    "OW": "oʊ", "OY": "ɔɪ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ",
    "T": "t", "TH": "θ", "UH": "ʊ", "UW": "u", "V": "v", "W": "w",
    "Y": "j", "Z": "z", "ZH": "ʒ",
}  # fmt: skip


def to_ipa(phone: str) -> str | None:
    """The IPA of one ARPAbet phone (stress digits ignored); None for silence and noise."""
    return ARPABET_TO_IPA.get(phone.rstrip("012").upper())
