"""The sign-in link run.py prints for the development user."""

from __future__ import annotations


def sign_in_link(url: str, token: str) -> str:
    """The console's address with the token in the fragment.

    A fragment never leaves the browser, so the token stays out of every access log; the
    page trades it for its session cookie and removes it from the address bar.
    """
    return f"{url.rstrip('/')}/#token={token}"
