"""What ``run.py`` prints once the service is ready: where it is, how to call it, whom it trusts."""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path

from web.auth import development_secret, issue_token, secret_path
from web.console.links import sign_in_link
from web.settings import Settings

RULE = "=" * 72
_ROOT = Path(__file__).resolve().parents[1]
#: A recording the checkout ships, so that the curl example works as printed.
SAMPLE = _ROOT / "tests" / "data" / "two_cities_5s.wav"


def _run_py() -> str:
    """How to run ``run.py`` with this very interpreter (the venv's, not whatever
    ``python`` is on PATH)."""
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(_ROOT / 'run.py'))}"


def banner(url: str, settings: Settings, joined: str | None = None) -> list[str]:
    """The lines of the start banner, framed by rules so that they stand out of the log.

    ``joined``: which instance this is and which cluster it joined.
    """
    lines = [RULE, f"service-task-manager is ready at {url}"]
    if joined is not None:
        lines.append(joined)
    lines += _how_to_call(url, settings)
    if settings.trusts_identity:
        what = " and ".join(
            part
            for part, on in (
                (f"the {settings.auth_gateway_header} header", settings.auth_mode == "gateway"),
                ("the ILPS routes' user_id", settings.ilps_compat),
            )
            if on
        )
        lines.append(f"{what}: trusted only from {settings.trusted()} (MANAGER_TRUSTED_NETWORKS)")
    lines += ["stop with Ctrl-C or SIGTERM; unfinished tasks resume at the next start", RULE]
    return lines


def _how_to_call(url: str, settings: Settings) -> list[str]:
    if settings.auth_mode == "gateway":
        return [f"callers are named by the {settings.auth_gateway_header} header (gateway mode)"]
    if not settings.auth_jwt_algorithm.startswith("HS"):
        return [f"callers need {settings.auth_jwt_algorithm} tokens of the configured key"]
    if settings.auth_jwt_secret is not None:
        return [f"tokens: {_run_py()} token --user <uuid> (with the same MANAGER_AUTH_JWT_SECRET)"]
    if not settings.print_dev_token:
        return [f"tokens: {_run_py()} token --user <uuid> (signed with the data dir's secret)"]
    secret = development_secret(settings.data_dir)
    user = uuid.uuid5(uuid.NAMESPACE_URL, "dev-user:" + secret)
    token = issue_token(secret, user, algorithm=settings.auth_jwt_algorithm)
    data_dir = secret_path(settings.data_dir).parent
    sample = shlex.quote(str(SAMPLE))
    return [
        f"development user {user}; its token (30 days):",
        f"  export TOKEN={token}",
        f"sign in: {sign_in_link(url, token)}",
        "try it:",
        f'  curl -s -H "Authorization: Bearer $TOKEN" -F file=@{sample} {url}/tasks',
        f'  curl -N -H "Authorization: Bearer $TOKEN" {url}/tasks/<id>/events',
        f'  curl -s -H "Authorization: Bearer $TOKEN" {url}/tasks/<id>',
        f"other users: MANAGER_DATA_DIR={data_dir} {_run_py()} token --user <uuid>",
    ]
