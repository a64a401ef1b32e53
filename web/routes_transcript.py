"""``GET /tasks/{id}/transcript``: a completed task's transcript as a file to save."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from supervisor.lifecycle import Status
from web.context import services
from web.errors import ApiError, not_found
from web.routes_tasks import task_id_of
from web.transcript_view import Finished

#: Each format's media type and how it is written.
FORMATS: dict[str, tuple[str, Callable[[Finished], str]]] = {
    "txt": ("text/plain; charset=utf-8", Finished.txt),
    "srt": ("application/x-subrip; charset=utf-8", Finished.srt),
    "vtt": ("text/vtt; charset=utf-8", Finished.vtt),
    "json": ("application/json", Finished.json),
}


async def get_transcript(request: Request) -> Response:
    name = request.query_params.get("format", "txt")
    if name not in FORMATS:
        raise ApiError(422, f"format must be one of {', '.join(FORMATS)}")
    app = services(request)
    record = await app.store.get(app.auth.user_id(request), task_id_of(request))
    if record is None:
        raise not_found()
    if record.status != Status.COMPLETED:
        detail = f"the transcript is ready once the task is completed; it is {record.status}"
        raise ApiError(409, detail)
    media_type, write = FORMATS[name]
    filename = f"{_stem(record.title) or record.id}.{name}"
    headers = {"Content-Disposition": attachment(filename)}
    return Response(write(Finished.of(record)), media_type=media_type, headers=headers)


def _stem(title: str) -> str:
    """The title without its extension ("reading.wav" -> "reading"), as a file name."""
    name = PurePosixPath(title.replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return "".join(ch for ch in stem if ch.isprintable()).strip()


def attachment(filename: str) -> str:
    """``Content-Disposition`` for a download: an ASCII name for old clients, the exact
    one (RFC 6266 ``filename*``) for the rest."""
    ascii_name = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


ROUTES = [Route("/tasks/{task_id}/transcript", get_transcript, methods=["GET"])]
