"""Reading a multipart upload safely: size-limited while it streams, sniffed before storing."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from speech.sniff import media_type, sniff_audio
from store.records import NewUpload
from web.errors import ApiError
from web.upload_spool import HashingSpool, SpooledBody

log = logging.getLogger(__name__)

#: Room for the multipart framing and the text fields around the file.
_FRAMING = 256 * 1024
_SNIFF_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class ParsedUpload:
    #: The text fields (the last value of a repeated name).
    fields: dict[str, str]
    upload: NewUpload
    #: Every text field in order, repeated names included (``timestamp_granularities[]``).
    repeated: tuple[tuple[str, str], ...] = ()


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the upload is larger than {limit} bytes")


@asynccontextmanager
async def read_upload(request: Request, limit: int) -> AsyncIterator[ParsedUpload]:
    """Parse ``file`` and the text fields; 413/415/422 before anything is stored.

    The file is spooled to disk as it arrives, hashed on the way; the upload's body
    reads it back from there, so store it before this context ends.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _FRAMING:
        raise _too_large(limit)  # refused before a byte of the body is read
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(422, "send the recording as multipart/form-data with a 'file' part")
    counted = Request(request.scope, _counting(request, limit + _FRAMING))
    try:
        form = await _parse(counted)
    except _TooLarge:
        raise _too_large(limit) from None
    except MultiPartException as error:
        raise ApiError(422, f"the multipart body is malformed: {error.message}") from None
    except ClientDisconnect:
        raise _hung_up(request) from None
    try:
        yield await _accept(_as_utf8(form), limit)
    finally:
        await form.close()


def _hung_up(request: Request) -> ApiError:
    """A client that went away mid-upload: its error, one line in the log."""
    client = request.client
    log.info("a client (%s) hung up before its upload ended", client.host if client else "?")
    return ApiError(400, "the client closed the connection before the upload ended")


async def _parse(request: Request) -> FormData:
    """Starlette's streaming multipart parser, told that every part is Latin-1.

    Starlette reads text that is not valid UTF-8 as Latin-1 and would store the
    mojibake. Latin-1 maps bytes to characters one to one, so reading every part
    as Latin-1 keeps the bytes exactly, and ``_as_utf8`` then decodes them strictly.
    (Parsed here rather than by ``Request.form``, which turns a malformed body into
    a 400 before this module can answer its documented 422.)
    """
    _, params = parse_options_header(request.headers["content-type"])
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultiPartException("the Content-Type has no boundary")
    quoted = boundary.decode("latin-1")
    latin1 = Headers({"content-type": f'multipart/form-data; boundary="{quoted}"; charset=latin-1'})
    async with aclosing(request.stream()) as stream:
        parser = _Parser(latin1, stream, max_files=1, max_fields=32, max_part_size=65536)
        form = await parser.parse()
    if not parser.complete:
        await form.close()
        for spooled in parser._files_to_close_on_error:  # the part cut off, too
            spooled.close()
        raise MultiPartException("the body ends before its closing boundary")
    return form


class _Parser(MultiPartParser):
    """Notices a body that ends before its closing boundary: python-multipart accepts
    one silently, and Starlette then drops the part in progress without closing it.
    And spools each file into a ``HashingSpool``: on disk past 64 KiB, hashed as written.
    """

    complete = False

    def on_end(self) -> None:
        self.complete = True
        super().on_end()

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None:  # a file part: swap Starlette's spool for a hashing one
            spool = HashingSpool()
            self._files_to_close_on_error[-1].close()
            self._files_to_close_on_error[-1] = spool
            upload.file = spool  # type: ignore[assignment]  # a BinaryIO in all but name


def _as_utf8(form: FormData) -> FormData:
    """The form with its names and text decoded as UTF-8: invalid text, or text with a NUL
    (which PostgreSQL cannot store), is a 422. A file name that is not UTF-8 is read as
    Latin-1, as browsers of old sent them."""
    items: list[tuple[str, str | UploadFile]] = []
    for raw_name, value in form.multi_items():
        name = _utf8(raw_name, "a field name")
        if isinstance(value, str):
            items.append((name, _utf8(value, f"the field '{name}'")))
        else:
            if value.filename is not None:
                raw = value.filename.encode("latin-1")
                if _is_utf8(raw):
                    value.filename = raw.decode("utf-8")
            items.append((name, value))
    return FormData(items)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8(latin1: str, what: str) -> str:
    raw = latin1.encode("latin-1")
    if not _is_utf8(raw):
        raise ApiError(422, f"{what} is not valid UTF-8 text")
    text = raw.decode("utf-8")
    if "\x00" in text:
        raise ApiError(422, f"{what} contains a NUL character")
    return text


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
    content_type = _stored_type(file.content_type)
    filename = _safe_name(file.filename or "upload")
    head = await file.read(_SNIFF_BYTES)
    if not head:
        raise ApiError(422, "the file is empty")
    if not sniff_audio(head, filename, content_type):
        raise ApiError(415, "the file is not a recording in a format this service decodes")
    spool = file.file
    assert isinstance(spool, HashingSpool)  # _Parser spools every file so
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    repeated = tuple((k, v) for k, v in form.multi_items() if isinstance(v, str))
    upload = NewUpload(
        data=SpooledBody(spool),
        filename=filename,
        content_type=content_type,
        sha256=spool.sha256.hexdigest(),
    )
    return ParsedUpload(fields, upload, repeated)


#: The subtype of a media type as RFC 6838 names them (what is kept of a declared type).
_SUBTYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,99}")


def _stored_type(declared: str | None) -> str:
    """The media type kept with the upload, and served back with it: a well-formed audio,
    video (browsers label WebM recordings so) or application type, without parameters;
    anything else (text/html, control characters...) is application/octet-stream."""
    kind, _, subtype = media_type(declared or "").partition("/")
    if kind in ("audio", "video", "application") and _SUBTYPE.fullmatch(subtype):
        return f"{kind}/{subtype}"
    return "application/octet-stream"


def _safe_name(name: str) -> str:
    """The last path segment, printable characters only, at most 255 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip() or "upload"
    return cleaned[:255]
