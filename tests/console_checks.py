"""What the console's browser tests check on any page: no sideways scrolling, touch
targets, axe-core's verdict; and page hooks for speech synthesis and clip playback."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
from playwright.async_api import Page, expect

from tests.conftest import SECRET
from tests.service_helpers import auth, create, read_stream
from web.auth import issue_token
from web.console.links import sign_in_link

ROOT = Path(__file__).parents[1]
#: axe-core from the npm registry: `.ci/run` installs it (npm install --prefix .cache/axe).
AXE = Path(os.environ.get("AXE_CORE_JS") or ROOT / ".cache/axe/node_modules/axe-core/axe.min.js")
AXE_MISSING = f"no axe-core at {AXE} (npm install --prefix .cache/axe axe-core@4)"
#: A title no line can break: the lists and headings must wrap or truncate it.
LONG_TITLE = "W" * 50
WIDTHS = [(360, 740), (1280, 800)]
#: The clip says the first half; the second half is left unread (missed words).
READING = "It was the best of times, it was the worst of times, it was the age of wisdom"
WAIT_S = 120


async def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: a temporary folder (CONSOLE_SCREENSHOTS to choose it), never
    a tracked file; docs/console.png is updated by hand from one of them."""
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    await anyio.Path(shots).mkdir(parents=True, exist_ok=True)
    return shots


async def sign_in(page: Page, base_url: str, user: uuid.UUID) -> None:
    """Open the sign-in link run.py prints, and wait until the page is signed in."""
    await page.goto(sign_in_link(base_url, issue_token(SECRET, user)))
    await expect(page.locator("body[data-ready=true]")).to_be_attached()
    await expect(page.get_by_test_id("nav-record")).to_be_visible()
    assert "token" not in page.url  # out of the address bar at once


async def scored_task(
    client: httpx.AsyncClient, user: uuid.UUID, clip: bytes, title: str = LONG_TITLE
) -> dict[str, Any]:
    """A task of the human clip scored against READING, once it has ended."""
    task = (await create(client, user, clip, title=title, reference_text=READING)).json()
    with anyio.fail_after(WAIT_S):
        await read_stream(client, f"/tasks/{task['id']}/events", auth(user))
    done: dict[str, Any] = (await client.get(f"/tasks/{task['id']}", headers=auth(user))).json()
    assert done["status"] == "completed", done
    return done


_WIDEST = """() => {
  const right = (n) => Math.round(n.getBoundingClientRect().right);
  const past = (n) => right(n) > window.innerWidth;
  return [...document.querySelectorAll("body *")]
  .filter((n) => past(n) || n.scrollWidth > n.clientWidth + 1)
  .filter((n) => ![...n.children].some(past))
  .slice(0, 8)
  .map((n) => `${n.tagName}#${n.id}.${n.className}: right ${right(n)}, scrolls ${n.scrollWidth}`);
}"""


async def assert_fits(page: Page, what: str) -> None:
    """No sideways scrolling: the document is no wider than the viewport."""
    wide = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if wide[0] > wide[1]:
        culprits = await page.evaluate(_WIDEST)  # the innermost elements past the edge
        raise AssertionError(f"{what}: {wide[0]} px wide in a {wide[1]} px viewport: {culprits}")


_SMALL_TARGETS = """() => [...document.querySelectorAll(
    "button, a.button, nav a, input, select, textarea, summary")]
  .filter((n) => n.getClientRects().length && getComputedStyle(n).visibility !== "hidden")
  .map((n) => [n.dataset.testid || n.id || n.textContent.trim(), n.getBoundingClientRect()])
  .filter(([, r]) => r.height < 43.5 || r.width < 43.5)
  .map(([name, r]) => `${name}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""


async def assert_touch_targets(page: Page, what: str) -> None:
    """Every visible control is at least 44 px each way."""
    small = await page.evaluate(_SMALL_TARGETS)
    assert small == [], f"{what}: targets under 44 px: {small}"


async def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now.

    The script is evaluated through the DevTools protocol, which the page's
    Content-Security-Policy (scripts from 'self' only) does not govern.
    """
    await page.evaluate(await anyio.Path(AXE).read_text())
    found = await page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target).join(", ")}`)"""
    )
    return list(found)


def speech_hook(voices: list[dict[str, Any]]) -> str:
    """An init script standing in for speechSynthesis: its voices are `voices` (changed
    with window.__setVoices), and what it is asked to say lands in window.__spoken."""
    return f"""(() => {{
        const listeners = [];
        window.__voices = {json.dumps(voices)};
        window.__spoken = [];
        window.__setVoices = (voices) => {{
            window.__voices = voices;
            listeners.forEach((f) => f());
        }};
        const synthesis = {{
            getVoices: () => window.__voices,
            speak: (u) => window.__spoken.push({{ text: u.text, lang: u.lang }}),
            cancel: () => {{}},
            addEventListener: (name, f) => name === "voiceschanged" && listeners.push(f),
        }};
        const own = {{ value: synthesis, configurable: true }};
        Object.defineProperty(window, "speechSynthesis", own);
        window.SpeechSynthesisUtterance = class {{ constructor(text) {{ this.text = text; }} }};
    }})()"""


ENGLISH: list[dict[str, Any]] = [{"name": "Test English", "lang": "en-GB", "default": True}]

#: Before a clip plays: where the recording starts playing and where it pauses.
WATCH_CLIP = """() => {
    const audio = document.getElementById("playback");
    audio.muted = true;
    window.__clip = {};
    const once = { once: true };
    audio.addEventListener("playing", () => { window.__clip.from = audio.currentTime; }, once);
    audio.addEventListener("pause", () => { window.__clip.to = audio.currentTime; }, once);
}"""


async def played_clip(page: Page) -> tuple[float, float]:
    """Where the clip watched by WATCH_CLIP started and stopped, once it has stopped."""
    await page.wait_for_function("() => window.__clip && window.__clip.to !== undefined")
    clip = await page.evaluate("window.__clip")
    return float(clip["from"]), float(clip["to"])
