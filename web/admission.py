"""Admitting a task from an upload: the upload slot, the spooled upload, the door.

``POST /tasks``, ``POST /v1/audio/transcriptions`` and the legacy ``POST /transcribe``
differ only in how they read their fields into a task; everything around that is here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from starlette.requests import Request

from store.records import NewTask, NewUpload, TaskRecord
from supervisor import facts
from supervisor.supervisor import NotAccepting
from web.context import Services
from web.errors import ApiError
from web.uploads import ParsedUpload, read_upload


def draining_error() -> ApiError:
    """The 503 of new work while the service shuts down."""
    return ApiError(
        503, "the service is shutting down; try again shortly", headers={"Retry-After": "5"}
    )


def refuse_when_draining(app: Services) -> None:
    """The draining 503 (with ``Retry-After``) once the service has begun to stop."""
    if app.draining.is_set() or not app.door.accepting:
        raise draining_error()


async def admit(app: Services, task: NewTask, upload: NewUpload) -> tuple[TaskRecord, bool]:
    """Persist the task and give it its actor, through the door."""
    try:
        record, created = await app.door.create(functools.partial(app.store.admit, task, upload))
    except NotAccepting:
        raise draining_error() from None
    if created:
        facts.task_created(record.id, task.user_id)
    return record, created


async def admit_upload(
    request: Request, app: Services, task_of: Callable[[ParsedUpload], tuple[NewTask, NewUpload]]
) -> tuple[TaskRecord, bool]:
    """Hold an upload slot while the upload is read, made a task by ``task_of`` (which
    refuses bad fields) and admitted; the record as stored, and whether it is new."""
    with app.uploads.slot():
        async with read_upload(request, app.settings.max_upload_bytes) as parsed:
            task, upload = task_of(parsed)
            return await admit(app, task, upload)
