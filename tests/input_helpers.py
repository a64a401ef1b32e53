"""What the input tests share: a recording that fails at once, a task count, a 422 check."""

from __future__ import annotations

import uuid

import httpx
import numpy as np

from tests.service_helpers import Running, auth
from tests.stages_helpers import wav_of

#: A recording that fails at once (silent): a task that must exist, not run, ends quickly
#: instead of keeping engine slots from the tests after it (recovery runs it again).
SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)


async def count_tasks(svc: Running, user: uuid.UUID) -> int:
    page = await svc.client.get("/tasks?limit=100", headers=auth(user))
    return len(page.json()["items"])


def assert_invalid(answer: object, *words: str) -> None:
    """A 422 ``invalid`` whose detail names each of ``words``."""
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid"
    for word in words:
        assert word in body["detail"], body
