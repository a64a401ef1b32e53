"""Which languages a transcriber recognises, so that a task in another is refused at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: A BCP 47-like tag (``en``, ``en-US``, ``pt_BR``, ``yue``), or the name ILPS sends.
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*|english", re.IGNORECASE)


def well_formed(language: str) -> bool:
    """Whether ``language`` looks like a language tag at all."""
    return _TAG.fullmatch(language.strip()) is not None


@dataclass(frozen=True)
class Languages:
    """What one transcriber accepts, and how a refusal names it."""

    accepts: Callable[[str], bool]
    #: For a person: e.g. "en-US (also written en or english)".
    names: str
    #: Who refuses: e.g. "the embedded recogniser".
    engine: str
