"""The HTTP face of the service: Starlette routes, auth, SSE and start-up."""
