"""Reading a multipart upload safely: size-limited while it streams, sniffed before storing."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from store.records import NewUpload
from supervisor.stages.sniff import sniff_audio
from web.errors import ApiError

#: Room for the multipart framing and the text fields around the file.
_FRAMING = 256 * 1024
_SNIFF_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class ParsedUpload:
    fields: dict[str, str]
    upload: NewUpload


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the upload is larger than {limit} bytes")


async def read_upload(request: Request, limit: int) -> ParsedUpload:
    """Parse ``file`` and the text fields; 413/415/422 before anything is stored."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _FRAMING:
        raise _too_large(limit)  # refused before a byte of the body is read
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(422, "send the recording as multipart/form-data with a 'file' part")
    counted = Request(request.scope, _counting(request, limit + _FRAMING))
    try:
        form = await counted.form(max_files=1, max_fields=32, max_part_size=64 * 1024)
    except _TooLarge:
        raise _too_large(limit) from None
    except MultiPartException as error:
        raise ApiError(422, f"the multipart body is malformed: {error.message}") from None
    try:
        return await _accept(form, limit)
    finally:
        await form.close()


def _counting(request: Request, limit: int) -> Callable[[], Awaitable[Message]]:
    """The request's receive, raising once the body passes ``limit`` bytes."""
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return receive


async def _accept(form: FormData, limit: int) -> ParsedUpload:
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise ApiError(422, "the 'file' part is required")
    if file.size is not None and file.size > limit:
        raise _too_large(limit)
    content_type = file.content_type or "application/octet-stream"
    filename = _safe_name(file.filename or "upload")
    head = await file.read(_SNIFF_BYTES)
    if not head:
        raise ApiError(422, "the file is empty")
    if not sniff_audio(head, filename, content_type):
        raise ApiError(415, "the file is not a recording in a format this service decodes")
    data = head + await file.read()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = NewUpload(
        data=data,
        filename=filename,
        content_type=content_type[:127],
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return ParsedUpload(fields, upload)


def _safe_name(name: str) -> str:
    """The last path segment, printable characters only, at most 255 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip() or "upload"
    return cleaned[:255]
