"""A completed task's transcript as text, subtitles or JSON (the transcript route and the
OpenAI-compatible one share it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from store.records import TaskRecord
from transcripts import render
from transcripts.cues import Cue, cues, derived_segments
from transcripts.timing import Timed, timed


@dataclass(frozen=True)
class Finished:
    """What a transcript's exports are made of, read from the task record."""

    task_id: UUID
    transcript: str
    language: str
    duration: float | None
    #: As stored: ``{"text", "start", "end", "confidence"}``.
    words: list[dict[str, Any]]
    #: As stored (``{"text", "start", "end"}``); empty when the transcriber gave none.
    segments: list[dict[str, Any]]

    @classmethod
    def of(cls, record: TaskRecord) -> Finished:
        return cls(
            record.id,
            record.transcript or "",
            record.language,
            record.duration,
            list(record.words or ()),
            list(record.segments or ()),
        )

    def timed_words(self) -> list[Timed]:
        return timed(self.words)

    def sections(self) -> list[Timed]:
        """The segments as given, else made from the words at sentence ends and pauses."""
        return derived_segments(
            self.transcript, self.timed_words(), timed(self.segments), self.duration
        )

    def cues(self) -> list[Cue]:
        return cues(self.transcript, self.timed_words(), timed(self.segments), self.duration)

    def txt(self) -> str:
        return render.text(self.transcript)

    def srt(self) -> str:
        return render.srt(self.cues())

    def vtt(self) -> str:
        return render.vtt(self.cues())

    def json(self) -> str:
        body = {
            "task_id": str(self.task_id),
            "text": self.transcript,
            "language": self.language,
            "duration": self.duration,
            "segments": [{"text": s.text, "start": s.start, "end": s.end} for s in self.sections()],
            "words": self.words,
        }
        return json.dumps(body, ensure_ascii=False)
