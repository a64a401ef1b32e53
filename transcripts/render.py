"""A transcript written out: plain text, SubRip, WebVTT."""

from __future__ import annotations

from collections.abc import Sequence

from transcripts.cues import Cue


def clock(seconds: float, separator: str) -> str:
    """``HH:MM:SS<separator>mmm`` (SubRip's separator is a comma, WebVTT's a full stop)."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def text(transcript: str) -> str:
    """The transcript on one line, ending with a newline."""
    return " ".join(transcript.split()) + "\n"


def srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues separated by a blank line (none: an empty file)."""
    blocks = [
        f"{number}\n{clock(cue.start, ',')} --> {clock(cue.end, ',')}\n"
        + "\n".join(_srt_line(line) for line in cue.lines)
        for number, cue in enumerate(cues, 1)
    ]
    return "".join(block + "\n\n" for block in blocks)


def vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the ``WEBVTT`` header, then one block per cue."""
    blocks = [
        f"{clock(cue.start, '.')} --> {clock(cue.end, '.')}\n"
        + "\n".join(_vtt_line(line) for line in cue.lines)
        for cue in cues
    ]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def _srt_line(line: str) -> str:
    # SubRip has no escapes; an arrow inside a line would read as a timing line.
    return line.replace("-->", "->")


def _vtt_line(line: str) -> str:
    # WebVTT cue text is markup: & and < start entities and tags (and --> is then gone too).
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
