"""The Starlette application: routes and the common error shape."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from store.tasks import KeyContended, KeyReused
from supervisor.ports import JournalUnavailable
from web import openapi, routes_health, routes_ilps, routes_tasks
from web.context import Services
from web.errors import (
    ApiError,
    on_api_error,
    on_crash,
    on_http_exception,
    on_key_contended,
    on_key_reused,
    on_unavailable,
)


def create_app(services: Services) -> Starlette:
    routes: list[BaseRoute] = [*routes_health.ROUTES, *openapi.ROUTES, *routes_tasks.ROUTES]
    if services.settings.ilps_compat:
        routes += routes_ilps.ROUTES
    app = Starlette(
        debug=False,
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            JournalUnavailable: on_unavailable,
            KeyReused: on_key_reused,
            KeyContended: on_key_contended,
            Exception: on_crash,
        },
    )
    app.state.services = services
    return app
