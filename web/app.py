"""The Starlette application: routes and the common error shape."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from supervisor.ports import JournalUnavailable
from web import openapi, routes_health, routes_ilps, routes_metrics, routes_tasks
from web.context import Services
from web.errors import ApiError, on_api_error, on_crash, on_http_exception, on_unavailable


def create_app(services: Services) -> Starlette:
    routes: list[BaseRoute] = [
        *routes_health.ROUTES,
        *routes_metrics.ROUTES,
        *openapi.ROUTES,
        *routes_tasks.ROUTES,
    ]
    if services.settings.ilps_compat:
        routes += routes_ilps.ROUTES
    app = Starlette(
        debug=False,
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            JournalUnavailable: on_unavailable,
            Exception: on_crash,
        },
    )
    app.state.services = services
    return app
