"""``POST /webhook-secret``: a user's own webhook signing secret, made or rotated, shown once.

The deliveries to the user's tasks' ``webhook_url`` are signed with it (and, during a
rotation's overlap, with the one it replaced too); no other user can verify them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from store.webhook_secrets import WebhookSecretStore
from web.bodies import read_small_body
from web.context import services
from web.errors import ApiError
from web.responses import ModelResponse
from web.routes_tasks import validation_detail
from webhooks.signing import new_secret

#: How long a rotated-out secret still signs by default: a day, as Standard Webhooks suggests.
DEFAULT_OVERLAP = 86_400


class RotateIn(BaseModel):
    overlap_seconds: int = Field(
        DEFAULT_OVERLAP,
        ge=0,
        le=7 * 86_400,
        description="How long the previous secret keeps signing beside the new one",
    )


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="whsec_<base64>: shown this once, keep it")
    created_at: datetime
    previous_valid_until: datetime | None = Field(
        description="Until when the replaced secret signs too (null: there was none)"
    )


async def rotate(request: Request) -> Response:
    app = services(request)
    user_id = app.auth.user_id(request)
    try:
        body = RotateIn.model_validate_json(await read_small_body(request) or b"{}")
    except ValidationError as error:
        raise ApiError(422, validation_detail(error)) from None
    store = WebhookSecretStore(app.database)
    rotated = await store.rotate(user_id, new_secret(), body.overlap_seconds)
    out = WebhookSecretOut(
        secret=rotated.secret,
        created_at=rotated.created_at,
        previous_valid_until=rotated.previous_valid_until,
    )
    return ModelResponse(out, 201, headers={"Cache-Control": "no-store"})


ROUTES = [Route("/webhook-secret", rotate, methods=["POST"])]
