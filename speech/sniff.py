"""Cheap guesses, from an upload's first bytes, at whether it is audio at all.

The rule, for the HTTP layer's 415 and for the decoder's choice:

1. Bytes that start like a known audio container (RIFF/WAVE, RF64, FLAC, Ogg,
   ID3 or a valid MPEG/ADTS frame header, EBML for WebM/Matroska, ISO ``ftyp``
   for M4A/MP4/3GP, AIFF, AMR, CAF, Sun AU, ASF/WMA) are audio.
2. Otherwise the upload is headerless PCM only when it says so: a name ending
   in ``.pcm`` or ``.raw`` (the ILPS Android app sends ``audio_record.pcm`` as
   ``application/octet-stream``) or a raw PCM content type (``audio/pcm``...);
   even then, text and well-known image or document formats are refused.
3. Anything else (random bytes named ``x.bin``, text, images) is not audio.
"""

from __future__ import annotations

#: Container signatures at offset 0 that nothing but audio-bearing files use.
_STRONG_MAGIC = (
    b"fLaC",
    b"OggS",
    b"ID3",
    b"\x1aE\xdf\xa3",  # EBML: WebM, Matroska
    b"#!AMR",
    b"caff",
    b".snd",
    b"0&\xb2u\x8ef\xcf\x11",  # ASF: WMA
)
_NOT_AUDIO_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"PK\x03\x04",
    b"\x7fELF",
)
_PCM_SUFFIXES = (".pcm", ".raw")
#: Content types that declare little-endian 16-bit PCM (``audio/L16`` is big-endian: not here).
RAW_PCM_TYPES = frozenset({"audio/pcm", "audio/x-pcm", "audio/raw", "audio/x-raw", "audio/s16le"})


def media_type(content_type: str) -> str:
    """``audio/Ogg; codecs=opus`` -> ``audio/ogg``."""
    return content_type.split(";", 1)[0].strip().lower()


def has_container_magic(head: bytes) -> bool:
    """Whether the bytes start with a known audio container signature."""
    return has_strong_magic(head) or _is_mpeg_frame(head)


def has_strong_magic(head: bytes) -> bool:
    """Container signatures that headerless PCM cannot plausibly start with."""
    if head.startswith(_STRONG_MAGIC):
        return True
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    return head[4:8] == b"ftyp"


def _is_mpeg_frame(head: bytes) -> bool:
    """A valid MPEG audio (MP3) or ADTS (AAC) frame header at offset 0."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    if head[1] & 0xF6 == 0xF0:  # ADTS: MPEG-4/2 AAC, layer bits 00
        return (head[2] >> 2) & 0x0F < 13
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def says_pcm(filename: str, content_type: str) -> bool:
    """Whether the name or content type announces headerless PCM."""
    return filename.lower().endswith(_PCM_SUFFIXES) or media_type(content_type) in RAW_PCM_TYPES


def _looks_like_text(head: bytes) -> bool:
    text = head[: max(len(head) - 3, 1)].decode("utf-8", errors="replace")
    return "\ufffd" not in text and all(c.isprintable() or c in "\r\n\t\f" for c in text)


def sniff_audio(head: bytes, filename: str, content_type: str) -> bool:
    """Whether an upload whose first bytes are ``head`` may be audio (False: answer 415)."""
    if not head:
        return False
    if has_container_magic(head):
        return True
    if head.startswith(_NOT_AUDIO_MAGIC) or _looks_like_text(head):
        return False
    return says_pcm(filename, content_type)
