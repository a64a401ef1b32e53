"""The native task API: create, list, read, follow, download, cancel, retry, delete."""

from __future__ import annotations

import functools
from contextlib import aclosing
from dataclasses import replace
from urllib.parse import quote
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from store.cursor import BadCursor
from store.records import NewTask, NewUpload, StoredAudio, TaskRecord
from store.tasks import ListQuery
from supervisor import facts
from supervisor.events import Broadcast, QueuePosition
from supervisor.lifecycle import Status
from supervisor.messages import BY_THE_USER, CancelOutcome
from supervisor.supervisor import NotAccepting
from web.admission import admit_upload, draining_error, refuse_when_draining
from web.context import Services, services
from web.errors import ApiError, error_response, not_found
from web.feed import open_feed
from web.params import Instant, Language, ReferenceText, last_event_id
from web.ranges import Unsatisfiable, parse_range
from web.responses import ModelResponse
from web.schemas import AcceptedOut, TaskOut, page_json
from web.sse import EventSink, EventStreamResponse, SharedFrames, frame
from web.uploads import ParsedUpload
from webhooks.urls import MAX_URL_LENGTH, RefusedUrl, check_url


class CreateFields(BaseModel):
    """The text fields of ``POST /tasks`` beside the ``file`` part (no others: a misspelt
    field is a 422, not silently a task without it)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=50)
    text_id: UUID | None = None
    reference_text: ReferenceText | None = None
    language: Language = "en-US"
    sample_rate: int | None = Field(None, ge=4000, le=192_000)
    channels: int | None = Field(None, ge=1, le=8)
    webhook_url: str | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="An http(s) URL told when the task ends (Standard Webhooks, signed)",
    )


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the README promises 422 for anything else

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)
    status: list[Status] = []
    created_after: Instant | None = None
    created_before: Instant | None = None


def validation_detail(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    )


def task_id_of(request: Request) -> UUID:
    try:
        return UUID(request.path_params["task_id"])
    except ValueError:
        raise not_found() from None


async def create_task(request: Request) -> Response:
    app = services(request)
    user_id = app.auth.user_id(request)
    refuse_when_draining(app)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ApiError(422, "Idempotency-Key must be 1 to 200 characters")
    task_of = functools.partial(_new_task, app, user_id=user_id, key=key)
    record, created = await admit_upload(request, app, task_of)  # as stored: no actor moved it
    headers = {"Location": f"/tasks/{record.id}"}
    return ModelResponse(TaskOut.of(record), 201 if created else 200, headers=headers)


def _new_task(
    app: Services, parsed: ParsedUpload, *, user_id: UUID, key: str | None
) -> tuple[NewTask, NewUpload]:
    try:
        fields = CreateFields.model_validate(parsed.fields, context={"languages": app.languages})
    except ValidationError as error:
        raise ApiError(422, validation_detail(error)) from None
    webhook_url = _webhook_url(app, fields.webhook_url)
    upload = parsed.upload
    if fields.sample_rate or fields.channels:
        upload = replace(upload, sample_rate=fields.sample_rate, channels=fields.channels)
    task = NewTask(
        user_id=user_id,
        title=fields.title if fields.title is not None else upload.filename[:50],
        language=fields.language,
        text_id=fields.text_id,
        reference_text=(fields.reference_text or "").strip() or None,
        idempotency_key=key,
        webhook_url=webhook_url,
    )
    return task, upload


def _webhook_url(app: Services, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return check_url(raw.strip(), allow_private=app.settings.webhook_allow_private)
    except RefusedUrl as error:
        raise ApiError(422, str(error)) from None


async def list_tasks(request: Request) -> Response:
    app = services(request)
    user_id = app.auth.user_id(request)
    raw = dict(request.query_params)
    raw["status"] = request.query_params.getlist("status")  # type: ignore[assignment]
    try:
        params = ListParams.model_validate(raw)
    except ValidationError as error:
        raise ApiError(422, validation_detail(error)) from None
    query = ListQuery(
        user_id=user_id,
        limit=params.limit,
        cursor=params.cursor,
        statuses=[s.value for s in params.status],
        created_after=params.created_after,
        created_before=params.created_before,
    )
    try:
        page = await app.store.page(query)
    except BadCursor as error:
        raise ApiError(422, str(error)) from None
    return Response(page_json(page), media_type="application/json")


async def get_task(request: Request) -> Response:
    app = services(request)
    record = await app.store.get(app.auth.user_id(request), task_id_of(request))
    if record is None:
        raise not_found()
    return ModelResponse(TaskOut.of(record, await queue_position(app, record)))


async def queue_position(app: Services, record: TaskRecord) -> int | None:
    """Where a waiting task stands now (the ``queued`` event holds its place when it was
    written; the line has moved since):
    in its instance's engine queue, or, while no instance has room to own it (still
    ``created``), in the cluster's queue of unowned tasks."""
    if record.status == Status.QUEUED:
        return app.door.queue_position(record.id)
    if record.status == Status.CREATED and app.cluster is not None and not app.door.owns(record.id):
        return await app.cluster.unowned_position(record.id)
    return None


async def get_audio(request: Request) -> Response:
    app = services(request)
    audio = await app.store.audio(app.auth.user_id(request), task_id_of(request))
    if audio is None:
        raise not_found()
    if not audio.data:  # uploads are never empty: retention removed it
        raise ApiError(404, "this task's audio was removed by the retention policy")
    return audio_response(request, audio)


def audio_response(request: Request, audio: StoredAudio) -> Response:
    """The recording, whole (200) or the one byte range asked for (206, or 416)."""
    size = len(audio.data)
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(audio.filename, safe='')}",
        "X-Content-Type-Options": "nosniff",  # the client's bytes: never rendered as anything
        "Accept-Ranges": "bytes",
    }
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except Unsatisfiable:
        detail = f"the range lies outside the recording's {size} bytes"
        raise ApiError(416, detail, headers={"Content-Range": f"bytes */{size}"}) from None
    if wanted is None:
        return Response(audio.data, media_type=audio.content_type, headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    body = audio.data[wanted.start : wanted.end + 1]
    return Response(body, 206, media_type=audio.content_type, headers=headers)


async def cancel_task(request: Request) -> Response:
    app = services(request)
    return await cancel_of(app, app.auth.user_id(request), task_id_of(request))


async def cancel_of(
    app: Services, user_id: UUID, task_id: UUID, reason: str = BY_THE_USER
) -> Response:
    """Cancel ``user_id``'s task: 202 once ``cancelled`` is persisted, 409 when it had
    ended, 404 when it is not theirs. ``reason``: who cancelled it, when not its owner."""
    if await app.store.owned(user_id, task_id) is None:
        raise not_found()
    match await app.door.cancel(task_id, reason):
        case CancelOutcome.CANCELLED:
            return ModelResponse(AcceptedOut(id=task_id, status=Status.CANCELLED), 202)
        case CancelOutcome.UNAVAILABLE | CancelOutcome.MOVED:
            # While stopping, the answer that would have come from another instance
            # cannot be awaited here: say why (the request is recorded all the same).
            refuse_when_draining(app)
            raise ApiError(503, "the database is unavailable; try again shortly")
        case CancelOutcome.ENDED:
            now = await app.store.owned(user_id, task_id)
            raise ApiError(409, f"the task has already ended ({now or 'deleted'})")


async def retry_task(request: Request) -> Response:
    app = services(request)
    user_id = app.auth.user_id(request)
    task_id = task_id_of(request)
    if await app.store.owned(user_id, task_id) is None:
        raise not_found()
    refuse_when_draining(app)
    if await app.store.audio_removed(task_id):
        raise ApiError(409, "the task cannot run again: retention removed its audio")
    try:
        retried = await app.door.retry(task_id)
    except NotAccepting:
        raise draining_error() from None
    record = await app.store.get(user_id, task_id)
    if record is None:
        raise not_found()  # deleted meanwhile
    if not retried:
        raise ApiError(
            409, f"only failed or cancelled tasks can be retried; this one is {record.status}"
        )
    return ModelResponse(TaskOut.of(record, await queue_position(app, record)), 202)


async def delete_task(request: Request) -> Response:
    app = services(request)
    return await delete_of(app, app.auth.user_id(request), task_id_of(request))


async def delete_of(app: Services, user_id: UUID, task_id: UUID) -> Response:
    """Delete ``user_id``'s task (stopping it first when it runs): 204, or 404."""
    if await app.store.owned(user_id, task_id) is None:
        raise not_found()
    if not await app.door.delete(task_id, functools.partial(app.store.delete, user_id, task_id)):
        raise not_found()
    facts.deleted(task_id)
    return Response(status_code=204)


def _native_frame(event: Broadcast) -> bytes:
    if isinstance(event, QueuePosition):
        # No id: not journalled, so the client's Last-Event-ID stays on the last event.
        return frame(event.as_json(), event="position")
    return frame(event.as_json(), id=event.seq, event=event.type.value)


class TaskEvents:
    """``GET /tasks/{id}/events``: replay after Last-Event-ID, then live, as SSE."""

    def __init__(self) -> None:
        self._frames = SharedFrames(_native_frame)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        app = services(request)
        try:
            response = await self._open(request, app)
        except ApiError as error:
            response = error_response(error)
        await response(scope, receive, send)

    async def _open(self, request: Request, app: Services) -> Response | EventStreamResponse:
        task_id = task_id_of(request)
        status = await app.store.owned(app.auth.user_id(request), task_id)
        if status is None:
            raise not_found()
        after = last_event_id(request)
        feed = await open_feed(app.store, app.door, task_id, after, status=Status(status))
        if feed.exhausted:
            await feed.aclose()
            return Response(status_code=204)  # the stream has ended; nothing more will come

        async def produce(sink: EventSink) -> None:
            async with aclosing(feed.events()) as events:
                async for event in events:
                    await sink.write(self._frames(event))
            if feed.deleted:  # the last word: no reconnect will find the task
                await sink.write(frame({"task_id": str(task_id)}, event="deleted"))

        settings = app.settings
        return EventStreamResponse(
            produce,
            retry_ms=settings.sse_retry_ms,
            ping_seconds=settings.sse_ping_seconds,
            close=feed.aclose,
        )


ROUTES = [
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks", list_tasks, methods=["GET"]),
    Route("/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/tasks/{task_id}/audio", get_audio, methods=["GET"]),
    Route("/tasks/{task_id}/events", TaskEvents(), methods=["GET"]),
    Route("/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/tasks/{task_id}/retry", retry_task, methods=["POST"]),
]
