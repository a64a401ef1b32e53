"""Log lines as text or JSON, each stamped with the request and the task it belongs to.

The request id and user id are context variables set by the HTTP middleware and the
authenticator; the task id is set for an actor's whole supervision. They are read
when a record is made (not when it is formatted), so a handler that formats later,
or elsewhere, still sees the context the line was logged in.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
USER_ID: ContextVar[UUID | None] = ContextVar("user_id", default=None)
TASK_ID: ContextVar[UUID | None] = ContextVar("task_id", default=None)

#: The context fields, in the order they are written; a call's ``extra`` overrides them.
FIELDS = ("task_id", "user_id", "attempt", "status", "request_id")
#: Other ``extra`` fields lifecycle lines carry.
DETAILS = ("previous", "seconds", "stage", "reason", "failure", "delay")

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def enter_task(task_id: UUID) -> None:
    """From here on (in this task and its children) lines belong to ``task_id``,
    not to the request that happened to start its actor."""
    TASK_ID.set(task_id)
    REQUEST_ID.set(None)
    USER_ID.set(None)


def _stamp(record: logging.LogRecord) -> logging.LogRecord:
    record.stm_context = (REQUEST_ID.get(), USER_ID.get(), TASK_ID.get())
    return record


def install_context() -> None:
    """Stamp every record with the current context (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "stm_stamps", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _stamp(previous(*args, **kwargs))

    factory.stm_stamps = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of ``FIELDS`` and ``DETAILS`` that apply to ``record``."""
    request_id, user_id, task_id = getattr(record, "stm_context", (None, None, None))
    found: dict[str, Any] = {"task_id": task_id, "user_id": user_id, "request_id": request_id}
    for name in FIELDS + DETAILS:
        value = record.__dict__.get(name)
        if value is not None:
            found[name] = value
    return {
        name: value if isinstance(value, int | float | bool) else str(value)
        for name, value in found.items()
        if value is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **context_of(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Today's text line, with the context as ``key=value`` pairs at its end."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        context = context_of(record)
        text = super().formatMessage(record)
        if not context:
            return text
        return text + " " + " ".join(f"{name}={value}" for name, value in context.items())


def configure(log_format: Literal["text", "json"], level: str) -> None:
    """One handler on the root logger (uvicorn's loggers propagate to it), in ``log_format``."""
    install_context()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
