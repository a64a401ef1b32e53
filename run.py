"""Start the task manager: ``python run.py`` (serve) or ``python run.py token --user <uuid>``.

With no configuration it starts an embedded PostgreSQL in ./.data, applies the
migrations, and serves HTTP on 0.0.0.0:8064.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import URL


def _config_error(error: ValidationError | ValueError) -> int:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        name = "MANAGER_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else ""
        message = f"{name}: {first['msg']}" if name else first["msg"]
    else:
        message = str(error)
    print(f"configuration error: {message}", file=sys.stderr)
    return 2


def _token(user: str) -> int:
    from web.auth import issue_token, signing_key
    from web.settings import Settings

    try:
        settings = Settings()
        user_id = uuid.UUID(user)
        if not settings.auth_jwt_algorithm.startswith("HS"):
            raise ValueError("tokens can only be made with an HS* secret")
        key = signing_key(settings)
    except (ValidationError, ValueError) as error:
        return _config_error(error)
    print(issue_token(key, user_id, algorithm=settings.auth_jwt_algorithm))
    return 0


def _banner(url: str, settings: object) -> None:
    from web.auth import development_secret, issue_token
    from web.settings import Settings

    assert isinstance(settings, Settings)
    print(f"service-task-manager listening on {url}")
    if (
        settings.auth_mode == "jwt"
        and settings.auth_jwt_secret is None
        and (settings.auth_jwt_algorithm.startswith("HS"))
    ):
        secret = development_secret(settings.data_dir)
        user = uuid.uuid5(uuid.NAMESPACE_URL, "dev-user:" + secret)
        token = issue_token(secret, user, algorithm=settings.auth_jwt_algorithm)
        print(f"development user {user}; token (30 days):\n  {token}")
        print("try it:")
        print(f"  export TOKEN={token}")
        print(f'  curl -s -H "Authorization: Bearer $TOKEN" -F file=@speech.wav {url}/tasks')
        print(f'  curl -N -H "Authorization: Bearer $TOKEN" {url}/tasks/<id>/events')
        print(f'  curl -s -H "Authorization: Bearer $TOKEN" {url}/tasks/<id>')
    else:
        print("make a token with: python run.py token --user <uuid>")
    sys.stdout.flush()


def _serve() -> int:
    import anyio

    from ops import logs, multiprocess
    from speech.settings import SpeechSettings
    from store.embedded import start_embedded
    from store.migrate import upgrade
    from web.auth import signing_key
    from web.settings import Settings

    try:
        settings = Settings()
        speech = SpeechSettings()
        signing_key(settings)
    except (ValidationError, ValueError) as error:
        return _config_error(error)
    logs.configure(settings.log_format, settings.log_level)
    # Before anything imports prometheus_client: it picks its storage at import.
    multiprocess.prepare(settings.data_dir)
    from web.service import serve_forever

    url: URL = (
        settings.external_url() if not settings.embedded else start_embedded(settings.data_dir)
    )
    if settings.migrate_on_start:
        upgrade(url)
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    _banner(f"http://{host}:{settings.http_port}", settings)
    try:
        anyio.run(serve_forever, settings, speech, url, backend_options={"use_uvloop": True})
    finally:
        multiprocess.process_ended(os.getpid())
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    token = commands.add_parser("token", help="print a bearer token for a user, and nothing else")
    token.add_argument("--user", required=True, help="the user's UUID (the token's sub)")
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(args.user)
    return _serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
