"""What the list route writes without a model matches the model the OpenAPI document shows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from store.records import TaskSummary
from store.tasks import Page
from web.schemas import TaskListOut, TaskSummaryOut, page_json


def test_a_page_is_written_exactly_as_task_list_out() -> None:
    now = datetime.now(UTC)
    items = [
        TaskSummary(uuid.uuid4(), "a title", "completed", 87.5, now, now, None),
        TaskSummary(uuid.uuid4(), "ünïcode ✓", "failed", None, now, now, "engine crashed"),
    ]
    written = page_json(Page(items, "next-cursor"))
    model = TaskListOut.model_validate_json(written)
    assert [item.id for item in model.items] == [item.id for item in items]
    assert model.next_cursor == "next-cursor"
    raw = json.loads(written)
    assert set(raw) == set(TaskListOut.model_fields)
    assert all(set(item) == set(TaskSummaryOut.model_fields) for item in raw["items"])
    # Same text as the model would write: a client sees no difference.
    assert json.loads(model.model_dump_json()) == raw


def test_an_empty_last_page() -> None:
    assert json.loads(page_json(Page([], None))) == {"items": [], "next_cursor": None}
