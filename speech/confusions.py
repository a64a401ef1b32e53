"""Common learner substitutions in ARPAbet (pure).

The goodness of pronunciation (``gop.py``) measures each expected sound against these
substitutes only, on the sound's own frames of the phoneme model's posteriors: restricted
substitutions, as in "Enhancing GOP in CTC-Based Mispronunciation Detection with
Phonological Knowledge" (Parikh et al. 2025), so a substituted sound is told by the
expected phone losing to its likely substitute, not by a threshold that a poorly modelled
voice also crosses.
A final consonant dropped is not a rule here: a dropped sound is an absent one (``gop.py``).

Where the rules come from: the well-documented L2-English error patterns (Swan &
Smith, *Learner English*, 2001; the L1-transfer rules behind the extended networks of
Meng et al. 2007 and Harrison et al. 2009), one rule per pattern:

* TH -> S / T / F, DH -> D / Z: /θ ð/ are rare in the world's languages (French,
  German, Chinese, Japanese, Russian, Spanish-L1 speakers, ...).
* V -> W / F / B, W -> V: German, Hindi, Chinese (v/w); Spanish (b/v).
* R -> L, L -> R, N -> L: Japanese, Korean, Cantonese.
* IH -> IY, IY -> IH, UH -> UW, UW -> UH: no tense/lax contrast (Spanish, Italian,
  Japanese, Arabic, ...); AE -> EH, AE -> AA: no /æ/ (German, Dutch, Spanish, Chinese).
* EY -> EH, OW -> AO: diphthongs said as monophthongs (Spanish, German, Hindi).
* SH -> S, CH -> SH, JH -> Y, JH -> ZH, Y -> JH, P -> B: Spanish, French, Greek,
  Arabic.
* NG -> N (Spanish, German, Chinese); HH dropped (French, Italian, Portuguese).
* Final devoicing: Z -> S, D -> T, B -> P, G -> K, V -> F at the word's end (German,
  Dutch, Russian, Turkish, Chinese, ...).
* Final consonant dropped (Chinese, Vietnamese, Japanese, Spanish codas), except R:
  a final R not said is a non-rhotic accent (British, Australian), not an error.

Each rule changes one phone. None of this is chosen from the evaluation corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


@dataclass(frozen=True)
class Confusion:
    """One learner pattern: ``source`` said as ``target`` ("" drops it); ``final`` only
    as the word's last phone."""

    source: str
    target: str
    final: bool = False


#: Ordered by how widely the pattern is reported (first kept when a word has too many).
CONFUSIONS: tuple[Confusion, ...] = (
    Confusion("TH", "S"), Confusion("DH", "D"), Confusion("IH", "IY"),
    Confusion("V", "W"), Confusion("R", "L"), Confusion("L", "R"),
    Confusion("W", "V"), Confusion("TH", "T"), Confusion("DH", "Z"),
    Confusion("IY", "IH"), Confusion("UH", "UW"), Confusion("UW", "UH"),
    Confusion("AE", "EH"), Confusion("NG", "N"), Confusion("SH", "S"),
    Confusion("Z", "S", final=True), Confusion("D", "T", final=True),
    Confusion("HH", ""), Confusion("TH", "F"), Confusion("V", "F"),
    Confusion("V", "B"), Confusion("CH", "SH"), Confusion("JH", "Y"),
    Confusion("JH", "ZH"), Confusion("Y", "JH"), Confusion("P", "B"),
    Confusion("N", "L"), Confusion("AE", "AA"), Confusion("EY", "EH"),
    Confusion("OW", "AO"), Confusion("B", "P", final=True),
    Confusion("G", "K", final=True),
)  # fmt: skip
