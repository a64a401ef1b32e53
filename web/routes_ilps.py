"""The ILPS legacy routes (``MANAGER_ILPS_COMPAT=true``): a thin adapter over the native
store, supervisor and feed, speaking the contract in shared/docs/ILPS-CONTRACT.md.

They trust the ``user_id`` in the body, as the ILPS gateway sends it: mount them only
behind that authenticating gateway, on a private network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from store.records import NewTask, NewUpload
from store.tasks import ListQuery
from supervisor.events import QueuePosition
from supervisor.lifecycle import Status
from web.admission import admit_upload, refuse_when_draining
from web.bodies import read_small_body
from web.context import services
from web.errors import ApiError, not_found
from web.feed import TaskFeed, open_feed
from web.ilps_schemas import (
    RETRY_MS,
    CreatedOut,
    PathIn,
    TaskDetailOut,
    TaskItemOut,
    TranscribeIn,
    Unprocessable,
    UserIn,
    parse,
    status_updated,
)
from web.ilps_status import StatusTracker, StatusUpdate, opening_updates
from web.params import last_event_id
from web.responses import ModelResponse
from web.sse import EventSink, EventStreamResponse, frame
from web.uploads import ParsedUpload

_PAGE = 100
_MAX_BODY = 64 * 1024

Handler = Callable[[Request], Awaitable[ASGIApp]]


class Legacy:
    """An endpoint whose errors take FastAPI's shape, ``{"detail": ...}``, as ILPS's did."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response: ASGIApp
        try:
            response = await self._handler(request)
        except ApiError as error:
            response = JSONResponse({"detail": error.detail}, error.status, headers=error.headers)
        except Unprocessable as error:
            response = JSONResponse({"detail": error.errors}, 422)
        await response(scope, receive, send)


def _task_id(request: Request) -> UUID:
    return parse(PathIn, {"uuid": request.path_params["uuid"]}, "path").uuid


async def _user_id(request: Request) -> UUID:
    """The ``user_id`` of a small JSON body (read up to ``_MAX_BODY`` bytes, no further)."""
    return parse(UserIn, await read_small_body(request, _MAX_BODY), "body").user_id


async def health(request: Request) -> ASGIApp:
    return JSONResponse({"status": "healthy", "service": services(request).settings.service_name})


async def transcribe(request: Request) -> ASGIApp:
    """Store the task and hand it to the supervisor; the pipeline runs in the background."""
    app = services(request)
    refuse_when_draining(app)
    record, _ = await admit_upload(request, app, _task_of)
    return ModelResponse(CreatedOut(id=record.id))


def _task_of(parsed: ParsedUpload) -> tuple[NewTask, NewUpload]:
    fields = parse(TranscribeIn, dict(parsed.fields), "body")
    task = NewTask(
        user_id=fields.user_id, title=fields.title, language="en-US", text_id=fields.text_id
    )
    return task, parsed.upload


async def list_tasks(request: Request) -> ASGIApp:
    """All of the user's tasks, newest first, as the contract says: one JSON array, sent a
    page at a time (a page read, encoded and sent before the next is read), so a user with
    many tasks costs a page of memory, not all of them at once."""
    app = services(request)
    user_id = await _user_id(request)
    first = await app.store.page(ListQuery(user_id=user_id, limit=_PAGE))  # errors answer here

    async def pages() -> AsyncIterator[bytes]:
        page, separator = first, b"["
        while True:
            for summary in page.items:
                yield separator + TaskItemOut.of(summary).model_dump_json().encode()
                separator = b","
            if page.next_cursor is None:
                break
            page = await app.store.page(
                ListQuery(user_id=user_id, limit=_PAGE, cursor=page.next_cursor)
            )
        yield b"[]" if separator == b"[" else b"]"

    return StreamingResponse(pages(), media_type="application/json")


async def task_detail(request: Request) -> ASGIApp:
    app = services(request)
    task_id = _task_id(request)
    record = await app.store.get(await _user_id(request), task_id)
    if record is None:
        raise not_found()
    return ModelResponse(TaskDetailOut.of(record))


def _frame(task_id: UUID, update: StatusUpdate) -> bytes:
    return frame(status_updated(task_id, update.status), id=update.seq)


async def task_stream(request: Request) -> ASGIApp:
    """The current status, then one event per legacy status change; ends after the final one.

    The journal is read once from the start (the first status the client sees depends on
    all of it), then only live events follow. ``id:`` is the status event's seq, so a
    reconnect with ``Last-Event-ID`` gets the changes after it and nothing again.
    """
    app = services(request)
    task_id = _task_id(request)
    user_id = await _user_id(request)
    after = last_event_id(request)
    status = await app.store.owned(user_id, task_id)
    if status is None:
        raise not_found()
    feed = await open_feed(app.store, app.door, task_id, 0, status=Status(status))
    tracker = StatusTracker()
    opening = opening_updates(tracker, feed.replay, after)
    if not opening and feed.live is None and feed.ended:
        await feed.aclose()
        return Response(status_code=204)  # the client has seen the end: EventSource stops
    replayed = feed.replay[-1].seq if feed.replay else 0

    async def produce(sink: EventSink) -> None:
        for first in opening:
            await sink.write(_frame(task_id, first))
        if opening and opening[-1].final and not feed.follows_actor:
            return  # the task's current status is final (it ended as the feed opened)
        # The replay already ran through the tracker: only live events follow.
        live = TaskFeed(replayed, [], feed.live)
        async with aclosing(live.events()) as events:
            async for event in events:
                if isinstance(event, QueuePosition):
                    continue  # ILPS clients know statuses only
                update = tracker.feed(event)
                if update is None or update.seq <= after:
                    continue
                await sink.write(_frame(task_id, update))
                if update.final:
                    return

    ping = app.settings.sse_ping_seconds
    return EventStreamResponse(produce, retry_ms=RETRY_MS, ping_seconds=ping, close=feed.aclose)


ROUTES: list[BaseRoute] = [
    Route("/health", Legacy(health), methods=["GET"]),
    Route("/transcribe", Legacy(transcribe), methods=["POST"]),
    Route("/", Legacy(list_tasks), methods=["POST"]),
    Route("/{uuid}", Legacy(task_detail), methods=["POST"]),
    Route("/{uuid}/stream", Legacy(task_stream), methods=["POST"]),
]
