"""The OpenAPI paths of the operator's routes and the console's session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from web.admin_schemas import (
    AdminTaskDetailOut,
    AdminTaskListOut,
    BulkRetryIn,
    BulkRetryOut,
    OverviewOut,
    TimelineOut,
)
from web.schemas import AcceptedOut


class SignInIn(BaseModel):
    token: str = Field(min_length=1, max_length=8192, description="A bearer token (JWT)")


class SessionOut(BaseModel):
    user_id: UUID
    operator: bool = Field(description="Whether the operator's view and /admin are open")
    auth_mode: str = Field(description="jwt, or gateway")
    expires_at: datetime | None = Field(description="When the credentials stop working")


MODELS: list[type[BaseModel]] = [
    SignInIn,
    SessionOut,
    OverviewOut,
    AdminTaskListOut,
    AdminTaskDetailOut,
    TimelineOut,
    BulkRetryIn,
    BulkRetryOut,
]
_COOKIE = (
    "HttpOnly, SameSite=Strict, Secure over HTTPS, expiring with the token. Writes that "
    "carry the cookie must come from the service's own page (Origin or Sec-Fetch-Site), "
    "else 403."
)
_ONLY = "Operators only (MANAGER_ADMIN_USERS); 404 to others."

Json = Callable[[type[BaseModel], str], dict[str, Any]]
Errors = Callable[..., dict[str, Any]]


def paths(
    json: Json, errors: Errors, ref: Callable[[type[BaseModel]], dict[str, Any]], **shared: Any
) -> dict[str, Any]:
    task_id, status_items, instant = shared["task_id"], shared["status"], shared["instant"]
    audio = shared["audio"]  # the recording's download, as the user's route has it
    auth = errors(401, 404, 503)
    query = [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 200}},
        {
            "name": "status",
            "in": "query",
            "style": "form",
            "explode": True,
            "schema": {"type": "array", "items": status_items},
        },
        {"name": "user_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
        instant("created_after", "Tasks created after this time"),
        instant("created_before", "Tasks created before this time"),
    ]
    who = {"200": json(SessionOut, "Who is signed in"), **errors(401, 503)}
    return {
        "/session": {
            "post": {
                "summary": "The console's sign-in: a valid token comes back as the session cookie",
                "description": _COOKIE,
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(SignInIn)}},
                },
                "responses": {**who, **errors(403, 409, 422)},
            },
            "get": {"summary": "Who is signed in (cookie, bearer or gateway)", "responses": who},
            "delete": {
                "summary": "Sign out: the session cookie is cleared",
                "security": [],
                "responses": {"204": {"description": "Signed out"}},
            },
        },
        "/admin/overview": {
            "get": {
                "summary": "Queue depth, tasks per stage and status, failures, actor restarts",
                "description": _ONLY,
                "responses": {"200": json(OverviewOut, "The service now"), **auth},
            }
        },
        "/admin/tasks": {
            "get": {
                "summary": "Every user's tasks, newest first",
                "description": _ONLY,
                "parameters": query,
                "responses": {"200": json(AdminTaskListOut, "A page"), **auth, **errors(422)},
            }
        },
        "/admin/tasks/{task_id}": {
            "parameters": [task_id],
            "get": {
                "summary": "Any user's task, results included",
                "description": _ONLY,
                "responses": {"200": json(AdminTaskDetailOut, "The task"), **auth},
            },
            "delete": {
                "summary": "Delete any user's task (stopped first if running), events and audio",
                "description": _ONLY,
                "responses": {"204": {"description": "Deleted"}, **auth},
            },
        },
        "/admin/tasks/{task_id}/cancel": {
            "parameters": [task_id],
            "post": {
                "summary": "Cancel any user's live task (reason: cancelled by an operator)",
                "description": _ONLY,
                "responses": {"202": json(AcceptedOut, "Cancelled"), **auth, **errors(409)},
            },
        },
        "/admin/tasks/{task_id}/audio": {
            "parameters": [task_id],
            "get": audio(
                "Any user's recording, as GET /tasks/{task_id}/audio (Range too)",
                {**auth, **errors(416)},
                description=_ONLY,
            ),
        },
        "/admin/tasks/{task_id}/events": {
            "parameters": [task_id],
            "get": {
                "summary": "The task's event timeline",
                "description": _ONLY,
                "responses": {"200": json(TimelineOut, "Every event, oldest first"), **auth},
            },
        },
        "/admin/tasks/{task_id}/retry": {
            "parameters": [task_id],
            "post": {
                "summary": "Run any user's failed or cancelled task again",
                "description": _ONLY,
                "responses": {
                    "202": json(AdminTaskDetailOut, "Queued again"),
                    **auth,
                    **errors(409),
                },
            },
        },
        "/admin/retry": {
            "post": {
                "summary": "Run again the failed tasks a filter matches (at most 500 a call)",
                "description": _ONLY,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ref(BulkRetryIn)}},
                },
                "responses": {"200": json(BulkRetryOut, "What was retried"), **auth, **errors(422)},
            },
        },
    }
