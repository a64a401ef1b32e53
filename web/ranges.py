"""HTTP Range requests on a stored recording (RFC 9110 §14): what ``<audio>`` seeks with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive."""

    start: int
    end: int


class Unsatisfiable(ValueError):
    """The range lies wholly past the end (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for; None to send the whole body (no header, or one we ignore).

    A malformed header, another unit or several ranges are ignored, as the RFC allows:
    the answer is then the whole body with 200.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(size - length, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise Unsatisfiable(header)
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
