"""The ``Allow`` header of a 405: every method the request's path accepts.

Starlette gives each route its own methods, and answers a 405 with the methods of
the first route whose path matched; ``/tasks`` is two routes (GET, POST), so that
was only ever half the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's, sorted."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)
