"""Debian's Chromium driven by Playwright (never a downloaded browser), and a TCP proxy
whose connections a test can cut, as a network drop does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from service.running import bind
from tests.conftest import DATA

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # The microphone: Chromium's fake device, fed with the human speech clip.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    f"--use-file-for-fake-audio-capture={DATA / 'two_cities_5s.wav'}",
    "--autoplay-policy=no-user-gesture-required",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)"
)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def page_of(browser: Browser, *, width: int = 360, height: int = 800) -> AsyncIterator[Page]:
    """A fresh context (no cookies) at a phone's width; confirmations are accepted."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        await context.close()


class CuttableProxy:
    """Forwards TCP connections to the service; ``cut()`` drops every open one."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._scopes: set[anyio.CancelScope] = set()
        self.port = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CuttableProxy]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._forward)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> int:
        """Drop every open connection (the browser sees its streams end); how many."""
        scopes, self._scopes = self._scopes, set()
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            async with client, await anyio.connect_tcp("127.0.0.1", self._upstream) as server:
                async with anyio.create_task_group() as group:
                    group.start_soon(_pipe, client, server)
                    group.start_soon(_pipe, server, client)
        self._scopes.discard(scope)


async def _pipe(source: anyio.abc.SocketStream, target: anyio.abc.SocketStream) -> None:
    try:
        async for chunk in source:
            await target.send(chunk)
        await target.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


@asynccontextmanager
async def other_site(html: str, host: str = "localhost") -> AsyncIterator[str]:
    """A real page elsewhere on this machine: ``http://<host>:<port>/``.

    With ``localhost`` it is another site than the service's 127.0.0.1 (and both are
    loopback, so Chromium's local-network rules stay out of the way of the CORS and CSRF
    ones); with ``127.0.0.1`` it is another origin of the same site (the port differs).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await HTMLResponse(html)(scope, receive, send)

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        # No wait for uvicorn: the socket already listens, and connections queue until served.
        try:
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
    sock.close()
