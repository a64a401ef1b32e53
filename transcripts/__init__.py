"""A finished transcript as text and subtitles: cues from segments and word times."""
