"""Requests as the console's page makes them: the session cookie, and the page's Origin."""

from __future__ import annotations

import uuid

from tests.conftest import SECRET
from web.auth import issue_token
from web.console.cookie import SESSION_COOKIE


def cookie(user: uuid.UUID, token: str | None = None) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={token or issue_token(SECRET, user)}"}


def from_page(base_url: str, user: uuid.UUID) -> dict[str, str]:
    """A write from the service's own page: the cookie, with the browser's Origin."""
    return {**cookie(user), "Origin": base_url, "Sec-Fetch-Site": "same-origin"}
