"""A task's webhook log: ``GET /tasks/{id}/deliveries`` and redelivery of one of them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from store.deliveries import AttemptRecord, DeliveryRecord, DeliveryStore
from web.context import Services, services
from web.errors import ApiError, not_found
from web.responses import ModelResponse
from web.routes_tasks import task_id_of


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: float = Field(description="How long the request took")
    status_code: int | None = Field(description="The receiver's answer; null when none came")
    error: str | None = Field(description="Why no answer counted: timeout, refused address...")
    next_attempt_at: datetime | None = Field(description="When it is tried again, if it is")

    @classmethod
    def of(cls, record: AttemptRecord) -> AttemptOut:
        return cls(
            attempt=record.attempt,
            started_at=record.started_at,
            duration_ms=round(record.duration * 1000, 1),
            status_code=record.status_code,
            error=record.error,
            next_attempt_at=record.next_attempt_at,
        )


class DeliveryOut(BaseModel):
    id: UUID = Field(description="The webhook-id header, the same on every attempt")
    type: str = Field(description="task.completed, task.failed, task.cancelled...")
    url: str | None = Field(description="The task's webhook_url; null for the service's own")
    state: str = Field(description="pending, delivered, gone (410), failed, refused")
    seq: int = Field(description="The seq of the event it announces")
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=record.id,
            type=record.event_type,
            # The operator's URL is not the task owner's business.
            url=None if record.service_wide else record.url,
            state=record.state,
            seq=record.seq,
            attempt_count=record.attempts,
            next_attempt_at=record.next_attempt_at,
            created_at=record.created_at,
            attempts=[AttemptOut.of(a) for a in record.log],
        )


class DeliveryListOut(BaseModel):
    items: list[DeliveryOut]


class RedeliveryOut(BaseModel):
    id: UUID
    state: str


async def _owned_task(request: Request, app: Services) -> UUID:
    task_id = task_id_of(request)
    if await app.store.owned(app.auth.user_id(request), task_id) is None:
        raise not_found()
    return task_id


async def list_deliveries(request: Request) -> Response:
    app = services(request)
    task_id = await _owned_task(request, app)
    records = await DeliveryStore(app.database).of_task(task_id)
    return ModelResponse(DeliveryListOut(items=[DeliveryOut.of(r) for r in records]))


async def redeliver(request: Request) -> Response:
    app = services(request)
    task_id = await _owned_task(request, app)
    try:
        delivery = UUID(request.path_params["delivery_id"])
    except ValueError:
        raise ApiError(404, "Delivery not found.") from None
    if not await DeliveryStore(app.database).redeliver(task_id, delivery):
        raise ApiError(404, "Delivery not found.")
    app.webhooks.waker.notify()
    return ModelResponse(RedeliveryOut(id=delivery, state="pending"), 202)


ROUTES = [
    Route("/tasks/{task_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/tasks/{task_id}/deliveries/{delivery_id}/redeliver", redeliver, methods=["POST"]),
]
