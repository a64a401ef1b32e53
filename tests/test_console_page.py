"""The console's page: served at / by the service, light, self-contained, shipped in the package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL

from tests.service_helpers import Running, running_service
from web.console.routes import STATIC

pytestmark = pytest.mark.anyio

#: The issue's budget for the first load: HTML, CSS and JS together.
BUDGET = 150 * 1024
TEST_IDS = [
    "sign-in",
    "record",
    "stop",
    "file",
    "reference-text",
    "submit",
    "task-status",
    "progress",
    "accuracy",
]


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


def first_load() -> list[Path]:
    """The page and everything it loads before any API call: its CSS and every JS module."""
    return [STATIC / "index.html", *STATIC.glob("*.css"), *STATIC.glob("js/*.js")]


async def test_the_first_load_stays_within_150_kb_as_served(svc: Running) -> None:
    total = 0
    page = await svc.client.get("/")
    total += len(page.content)
    for path in first_load()[1:]:
        answer = await svc.client.get(f"/console/{path.relative_to(STATIC).as_posix()}")
        assert answer.status_code == 200, path
        total += len(answer.content)
    assert total <= BUDGET, f"the first load is {total} bytes"


async def test_the_page_is_served_at_the_root_with_a_strict_policy(svc: Running) -> None:
    page = await svc.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    script = await svc.client.get("/console/js/app.js")
    assert script.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in first_load():
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), path
        assert not re.search(r"""from\s+["']https?://""", text), path
        assert "import(" not in text or "http" not in text, path


def test_the_controls_tests_address_have_their_test_ids() -> None:
    html = (STATIC / "index.html").read_text()
    for test_id in TEST_IDS:
        assert f'data-testid="{test_id}"' in html, test_id
    scripts = "".join(p.read_text() for p in STATIC.glob("js/*.js"))
    for test_id in ("task-row", "word"):
        assert f'"data-testid": "{test_id}"' in scripts, test_id
    assert '"data-verdict"' in scripts


def test_every_control_has_a_label() -> None:
    html = (STATIC / "index.html").read_text()
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for _tag, attributes in re.findall(r"<(input|select|textarea)\b([^>]*)>", html):
        found = re.search(r'id="([^"]+)"', attributes)
        assert found, attributes
        assert found.group(1) in labelled or "aria-label" in attributes, attributes


def test_setuptools_packages_the_console_files() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["web.console"]
    packaged = {p for pattern in patterns for p in STATIC.parent.glob(pattern)}
    assert set(first_load()) <= packaged


async def test_the_page_is_served_beside_the_ilps_legacy_routes(
    service_database_url: URL, tmp_path: Path
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        assert (await svc.client.get("/")).status_code == 200
        assert (await svc.client.get("/console/js/app.js")).status_code == 200
        legacy = await svc.client.get("/health")
        assert legacy.status_code == 200
