"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from web.context import services


async def healthz(request: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> Response:
    """The database answers and the supervisor takes work; 503 otherwise."""
    app = services(request)
    checks = {
        "database": await app.database.ping(),
        "supervisor": app.supervisor.accepting and not app.draining.is_set(),
    }
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    cluster = app.cluster
    if cluster is not None:
        # How this instance hears of the others: "listen", "poll" (MANAGER_CLUSTER_EVENTS)
        # or "reconnecting" (LISTEN lost; polling until it is back).
        body["cluster"] = {
            "instance": str(cluster.instance_id),
            "name": cluster.config.name,
            "events": cluster.events_mode.value,
            "tasks_owned": len(cluster.claims),
        }
    return JSONResponse(body, 200 if ready else 503)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
