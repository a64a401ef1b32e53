"""The operator's API under ``/admin``: every user's tasks, the service's state, retries.

For anyone who is not an operator every route is 404, as if it did not exist. Commands
go through the door, as the learner's do.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from store.admin import AdminFilter, AdminStore
from store.cursor import BadCursor
from supervisor.lifecycle import Status
from supervisor.supervisor import NotAccepting
from web.admin_schemas import (
    AdminTaskDetailOut,
    AdminTaskListOut,
    AdminTaskOut,
    BulkRetryIn,
    BulkRetryOut,
    OverviewOut,
    TimelineOut,
)
from web.admission import draining_error, refuse_when_draining
from web.bodies import read_small_body
from web.context import Services, services
from web.errors import ApiError
from web.params import Instant
from web.responses import ModelResponse
from web.routes_tasks import (
    audio_response,
    cancel_of,
    delete_of,
    queue_position,
    task_id_of,
    validation_detail,
)
from web.schemas import EventOut

#: The statuses in which a task is at work in a stage.
WORKING = (Status.STARTED, Status.PREPROCESSING, Status.TRANSCRIBING, Status.EVALUATING)


class AdminListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the README promises 422 for anything else

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=200)
    status: list[Status] = []
    user_id: UUID | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None


def operator(request: Request) -> Services:
    """The services, once the caller is known to be an operator (else 401, or 404)."""
    app = services(request)
    if not app.is_operator(app.auth.caller(request)):
        raise ApiError(404, "Not found.")
    return app


async def overview(request: Request) -> Response:
    app = operator(request)
    counts = await AdminStore(app.database).counts()
    return ModelResponse(
        OverviewOut(
            queue_depth=app.door.queue_depth,
            running={s.value: counts.get(s.value, 0) for s in WORKING},
            by_status=counts,
            failed=counts.get(Status.FAILED.value, 0),
            actor_restarts=app.door.actor_restarts,
        )
    )


async def list_tasks(request: Request) -> Response:
    app = operator(request)
    raw = dict(request.query_params)
    raw["status"] = request.query_params.getlist("status")  # type: ignore[assignment]
    try:
        params = AdminListParams.model_validate(raw)
    except ValidationError as error:
        raise ApiError(422, validation_detail(error)) from None
    where = AdminFilter(
        tuple(s.value for s in params.status),
        params.user_id,
        params.created_after,
        params.created_before,
    )
    try:
        page = await AdminStore(app.database).page(where, params.limit, params.cursor)
    except BadCursor as error:
        raise ApiError(422, str(error)) from None
    items = [AdminTaskOut.model_validate(vars(item)) for item in page.items]
    return ModelResponse(AdminTaskListOut(items=items, next_cursor=page.next_cursor))


async def _owner(app: Services, task_id: UUID) -> UUID:
    owner = await AdminStore(app.database).owner(task_id)
    if owner is None:
        raise ApiError(404, "Task not found.")
    return owner


async def get_task(request: Request) -> Response:
    app = operator(request)
    task_id = task_id_of(request)
    record = await app.store.get(await _owner(app, task_id), task_id)
    if record is None:
        raise ApiError(404, "Task not found.")
    return ModelResponse(AdminTaskDetailOut.of(record, await queue_position(app, record)))


async def get_audio(request: Request) -> Response:
    """Any user's recording (the console plays an operator the words of a result)."""
    app = operator(request)
    task_id = task_id_of(request)
    audio = await app.store.audio(await _owner(app, task_id), task_id)
    if audio is None:
        raise ApiError(404, "Task not found.")
    if not audio.data:
        raise ApiError(404, "this task's audio was removed by the retention policy")
    return audio_response(request, audio)


async def timeline(request: Request) -> Response:
    app = operator(request)
    task_id = task_id_of(request)
    await _owner(app, task_id)
    events = await app.store.events_after(task_id, 0)
    return ModelResponse(TimelineOut(events=[EventOut.model_validate(vars(e)) for e in events]))


async def retry_task(request: Request) -> Response:
    app = operator(request)
    task_id = task_id_of(request)
    owner = await _owner(app, task_id)
    refuse_when_draining(app)
    if await app.store.audio_removed(task_id):
        raise ApiError(409, "the task cannot run again: retention removed its audio")
    retried = await _retry(app, task_id)
    record = await app.store.get(owner, task_id)
    if record is None:
        raise ApiError(404, "Task not found.")
    if not retried:
        detail = f"only failed or cancelled tasks can be retried; this one is {record.status}"
        raise ApiError(409, detail)
    return ModelResponse(AdminTaskDetailOut.of(record, await queue_position(app, record)), 202)


async def cancel_task(request: Request) -> Response:
    """Cancel any user's running task; the reason says an operator did."""
    app = operator(request)
    task_id = task_id_of(request)
    return await cancel_of(app, await _owner(app, task_id), task_id, "cancelled by an operator")


async def delete_task(request: Request) -> Response:
    """Delete any user's task, its events and its recording."""
    app = operator(request)
    task_id = task_id_of(request)
    return await delete_of(app, await _owner(app, task_id), task_id)


async def _retry(app: Services, task_id: UUID) -> bool:
    try:
        return await app.door.retry(task_id)
    except NotAccepting:
        raise draining_error() from None


async def bulk_retry(request: Request) -> Response:
    """Run again every failed task the filter matches (at most 500 per call)."""
    app = operator(request)
    try:
        body = BulkRetryIn.model_validate_json(await read_small_body(request) or b"{}")
    except ValidationError as error:
        raise ApiError(422, validation_detail(error)) from None
    refuse_when_draining(app)
    where = AdminFilter((), body.user_id, body.created_after, body.created_before)
    failed = await AdminStore(app.database).failed(where)
    # A task whose audio retention removed cannot run again: left out, as a single retry's 409.
    retried = [
        task_id
        for task_id in failed
        if not await app.store.audio_removed(task_id) and await _retry(app, task_id)
    ]
    return ModelResponse(BulkRetryOut(matched=len(failed), retried=retried))


ROUTES = [
    Route("/admin/overview", overview, methods=["GET"]),
    Route("/admin/tasks", list_tasks, methods=["GET"]),
    Route("/admin/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/admin/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/admin/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/admin/tasks/{task_id}/audio", get_audio, methods=["GET"]),
    Route("/admin/tasks/{task_id}/events", timeline, methods=["GET"]),
    Route("/admin/tasks/{task_id}/retry", retry_task, methods=["POST"]),
    Route("/admin/retry", bulk_retry, methods=["POST"]),
]
