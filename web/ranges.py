"""HTTP Range requests on a stored recording (RFC 9110 §14): what ``<audio>`` seeks with."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: One range of the bytes unit, ASCII digits only ("²".isdigit() is true, int("²") fails).
_SPEC = re.compile(r"bytes\s*=\s*([0-9]*)-([0-9]*)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive."""

    start: int
    end: int


class Unsatisfiable(ValueError):
    """The range lies wholly past the end (416)."""


#: Past any recording's size; longer numbers are read as this (int() refuses 4,300 digits).
_HUGE = 10**18


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for; None to send the whole body (no header, or one we ignore).

    A malformed header, another unit or several ranges are ignored, as the RFC allows:
    the answer is then the whole body with 200.
    """
    if header is None:
        return None
    found = _SPEC.fullmatch(header.strip())
    if found is None:
        return None
    first, last = found.group(1), found.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = _number(last)
        if length == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(size - length, 0), size - 1)
    start = _number(first)
    if last and _number(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise Unsatisfiable(header)
    end = _number(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
