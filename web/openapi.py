"""The OpenAPI 3.1 document, built from the same pydantic models the routes answer with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from web import openapi_admin, openapi_openai
from web.params import INSTANT_RANGE, SEQ_MAX
from web.routes_deliveries import DeliveryListOut, RedeliveryOut
from web.routes_tasks import CreateFields
from web.routes_webhook_secret import RotateIn, WebhookSecretOut
from web.schemas import AcceptedOut, ErrorOut, EventOut, TaskListOut, TaskOut

_MODELS: list[type[BaseModel]] = [
    ErrorOut,
    TaskOut,
    TaskListOut,
    EventOut,
    AcceptedOut,
    DeliveryListOut,
    RedeliveryOut,
    RotateIn,
    WebhookSecretOut,
    *openapi_admin.MODELS,
    *openapi_openai.MODELS,
]
_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


#: An event's seq: a PostgreSQL integer.
_SEQ = {"type": "integer", "minimum": 0, "maximum": SEQ_MAX}


#: A task's status, as a list filter takes it.
_STATUS = TaskOut.model_json_schema(ref_template="#/components/schemas/{model}")["properties"][
    "status"
]


def _instant(name: str, description: str) -> dict[str, Any]:
    # JSON Schema bounds numbers, not date-times: the range is stated in words.
    return {
        "name": name,
        "in": "query",
        "description": f"{description}: an RFC 3339 date-time {INSTANT_RANGE}",
        "schema": {"type": "string", "format": "date-time"},
    }


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(ErrorOut, "Error") for code in codes}


def _audio(summary: str, errors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A GET of a task's recording, whole or one byte range (the user's and the operator's)."""
    octets: dict[str, Any] = {"application/octet-stream": {}}
    return {
        "summary": summary,
        **extra,
        "parameters": [{"name": "Range", "in": "header", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The bytes as uploaded", "content": octets},
            "206": {"description": "The range asked for (Content-Range)", "content": octets},
            **errors,
        },
    }


def _upload_schema() -> dict[str, Any]:
    schema = CreateFields.model_json_schema()
    properties = {"file": {"type": "string", "format": "binary"}, **schema["properties"]}
    return {"type": "object", "required": ["file"], "properties": properties}


def _paths() -> dict[str, Any]:
    # Every route that reads the database answers 503 (Retry-After) while it is unavailable.
    auth = _errors(401, 503)
    task = _json(TaskOut, "The task")
    return {
        "/tasks": {
            "post": {
                "summary": "Upload a recording; it becomes a task",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _upload_schema()}},
                },
                "responses": {
                    "201": _json(TaskOut, "Created"),
                    "200": _json(TaskOut, "Same Idempotency-Key and request: the earlier task"),
                    **auth,
                    **_errors(409, 413, 415, 422, 503),
                },
            },
            "get": {
                "summary": "The caller's tasks, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "style": "form",
                        "explode": True,
                        "schema": {"type": "array", "items": _STATUS},
                    },
                    _instant("created_after", "Tasks created after this time"),
                    _instant("created_before", "Tasks created before this time"),
                ],
                "responses": {"200": _json(TaskListOut, "A page of tasks"), **auth, **_errors(422)},
            },
        },
        "/tasks/{task_id}": {
            "parameters": [_ID],
            "get": {
                "summary": "One task, results included",
                "responses": {"200": task, **auth, **_errors(404)},
            },
            "delete": {
                "summary": "Cancel if running; remove task, events and audio",
                "responses": {"204": {"description": "Deleted"}, **auth, **_errors(404)},
            },
        },
        "/tasks/{task_id}/events": {
            "parameters": [_ID],
            "get": {
                "summary": "Server-Sent Events: replay after Last-Event-ID, then live",
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": _SEQ,
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "schema": _SEQ,
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Each event's data is an EventOut; id is its seq."
                        " While the task is queued, `event: position` (no id, not"
                        " journalled) carries {task_id, status, position}: where it"
                        " stands now, on connecting and each time the line moves. A"
                        " deleted task's stream ends with `event: deleted` (no id).",
                        "content": {"text/event-stream": {"schema": _ref(EventOut)}},
                    },
                    "204": {"description": "The stream has ended; nothing more will come"},
                    **auth,
                    **_errors(404, 422),
                },
            },
        },
        "/tasks/{task_id}/audio": {
            "parameters": [_ID],
            "get": _audio(
                "The original upload; one byte range with Range: bytes=a-b",
                {**auth, **_errors(404, 416)},
            ),
        },
        "/tasks/{task_id}/cancel": {
            "parameters": [_ID],
            "post": {
                "summary": "Cancel a live task",
                "responses": {"202": _json(AcceptedOut, "Cancelling"), **auth, **_errors(404, 409)},
            },
        },
        "/tasks/{task_id}/retry": {
            "parameters": [_ID],
            "post": {
                "summary": "Run a failed or cancelled task again",
                "responses": {
                    "202": _json(TaskOut, "Queued again"),
                    **auth,
                    **_errors(404, 409, 503),
                },
            },
        },
        "/tasks/{task_id}/deliveries": {
            "parameters": [_ID],
            "get": {
                "summary": "The task's webhook deliveries: every attempt, its answer, the next try",
                "responses": {
                    "200": _json(DeliveryListOut, "The deliveries, oldest first"),
                    **auth,
                    **_errors(404),
                },
            },
        },
        "/tasks/{task_id}/deliveries/{delivery_id}/redeliver": {
            "parameters": [
                _ID,
                {
                    "name": "delivery_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
            ],
            "post": {
                "summary": "Send a delivery again now (same webhook-id), its retries afresh",
                "responses": {
                    "202": _json(RedeliveryOut, "Due now"),
                    **auth,
                    **_errors(404),
                },
            },
        },
        **openapi_openai.paths(_json, _errors, _ref, task_id=_ID),
        "/webhook-secret": {
            "post": {
                "summary": "Make or rotate your webhook signing secret (shown once)",
                "description": "Deliveries to your tasks' webhook_url are signed with it; the"
                " one it replaces signs too for `overlap_seconds` (several `v1,` signatures).",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(RotateIn)}},
                },
                "responses": {
                    "201": _json(WebhookSecretOut, "The new secret"),
                    **auth,
                    **_errors(413, 422),
                },
            },
        },
        **openapi_admin.paths(
            _json,
            _errors,
            _ref,
            task_id=_ID,
            status=_STATUS,
            instant=_instant,
            audio=_audio,
        ),
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "Alive"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: database and supervisor",
                "description": "`checks` says what is ready; `cluster` names this instance"
                " (`instance`, `name`), how it hears of the others' writes (`events`:"
                " `listen`, `poll`, or `reconnecting` while a lost LISTEN connection comes"
                " back) and how many live tasks it owns (`tasks_owned`).",
                "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
            }
        },
    }


def document(title: str) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "serialization") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "0.1.0"},
        "paths": _paths(),
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.services.settings.service_name))


ROUTES = [Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)]
