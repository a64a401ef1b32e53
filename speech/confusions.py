"""Common learner substitutions in ARPAbet, and the error variants of a pronunciation (pure).

The aligner (``forced.py``) offers each word these variants beside its dictionary
pronunciations, at a low prior: an "extended recognition network" (Meng et al. 2007;
Harrison et al. 2009), so a substituted sound is told by the expected phone losing
to its likely substitute on the same frames, not by a GOP threshold that a poorly
modelled voice also crosses.

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

Each rule changes one phone; an error variant is the canonical pronunciation with one
rule applied once. None of this is chosen from the evaluation corpus.
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

#: A final consonant not said (any consonant but R, see above).
FINAL_DROP = Confusion("*", "", final=True)


@dataclass(frozen=True)
class ErrorVariant:
    """A word's canonical pronunciation with one learner substitution applied."""

    #: What the learner says (ARPAbet).
    phones: tuple[str, ...]
    #: The canonical pronunciation it was made from.
    expected: tuple[str, ...]
    #: The index in ``expected`` of the phone replaced (or dropped).
    position: int
    #: The replacement ("" when the phone is dropped).
    heard: str


def _rules_at(phones: tuple[str, ...], k: int) -> list[Confusion]:
    """The rules that apply to phone ``k``, in ``CONFUSIONS`` order."""
    last = k == len(phones) - 1
    rules = [c for c in CONFUSIONS if c.source == phones[k] and (last or not c.final)]
    if last and phones[k] not in VOWELS and phones[k] != "R":
        rules.append(FINAL_DROP)
    return rules


def apply(phones: tuple[str, ...], position: int, target: str) -> tuple[str, ...]:
    """``phones`` with the phone at ``position`` replaced by ``target`` ("" drops it)."""
    return (*phones[:position], *((target,) if target else ()), *phones[position + 1 :])


def error_variants(
    pronunciations: tuple[tuple[str, ...], ...] | list[tuple[str, ...]], cap: int
) -> list[ErrorVariant]:
    """At most ``cap`` error variants of the first (canonical) pronunciation.

    None equals a dictionary pronunciation (that is not an error) or is empty. Past the
    cap, positions take turns (each phone's first rule, then each one's second...), so a
    long word keeps a competitor for every sound rather than many for its first.
    """
    if not pronunciations or not pronunciations[0] or cap <= 0:
        return []
    canonical = pronunciations[0]
    known = set(map(tuple, pronunciations))
    per_position = [_rules_at(canonical, k) for k in range(len(canonical))]
    out: list[ErrorVariant] = []
    for turn in range(max(map(len, per_position), default=0)):
        for k, rules in enumerate(per_position):
            if turn >= len(rules):
                continue
            said = apply(canonical, k, rules[turn].target)
            if not said or said in known:
                continue
            known.add(said)
            out.append(ErrorVariant(said, canonical, k, rules[turn].target))
            if len(out) == cap:
                return out
    return out
