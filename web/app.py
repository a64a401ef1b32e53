"""The Starlette application: routes and the common error shape."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from store.tasks import KeyContended, KeyReused
from supervisor.ports import JournalUnavailable
from web import (
    openai_api,
    openapi,
    routes_admin,
    routes_deliveries,
    routes_health,
    routes_ilps,
    routes_metrics,
    routes_tasks,
    routes_transcript,
    routes_webhook_secret,
)
from web.console import routes as console_routes
from web.console import session
from web.console.csrf import CsrfGuard
from web.context import Services
from web.cors import Cors
from web.errors import (
    ApiError,
    on_api_error,
    on_crash,
    on_http_exception,
    on_key_contended,
    on_key_reused,
    on_unavailable,
)
from web.trusted import TrustedNetworks, TrustedPeersOnly


def create_app(services: Services) -> Starlette:
    routes: list[BaseRoute] = [
        *routes_health.ROUTES,
        *routes_metrics.ROUTES,
        *openapi.ROUTES,
        *routes_tasks.ROUTES,
        *routes_transcript.ROUTES,
        *openai_api.ROUTES,
        *routes_deliveries.ROUTES,
        *routes_webhook_secret.ROUTES,
        *routes_admin.ROUTES,
        *session.ROUTES,
    ]
    if services.settings.ilps_compat:
        trusted = services.settings.trusted()
        routes += [_trusted_only(route, trusted) for route in routes_ilps.ROUTES]
    routes += console_routes.ROUTES  # last: its mount must not shadow an API path
    origins = services.settings.cors_origins
    app = Starlette(
        debug=False,
        routes=routes,
        # Outermost first: a preflight is answered before the CSRF guard looks at it.
        middleware=[
            Middleware(Cors, origins=origins),
            Middleware(CsrfGuard, allowed_origins=origins),
        ],
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


#: Legacy routes that take no user id, open to every peer like /healthz.
_NO_IDENTITY = frozenset({"/health"})


def _trusted_only(route: BaseRoute, trusted: TrustedNetworks) -> BaseRoute:
    """The legacy route behind the trusted-peer check: it believes the body's user_id."""
    if not isinstance(route, Route) or route.path in _NO_IDENTITY:
        return route
    guard = Middleware(TrustedPeersOnly, trusted=trusted)
    return Route(route.path, route.endpoint, methods=route.methods, middleware=[guard])
