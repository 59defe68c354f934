"""`todo`: the developer's command line (`todo run`, `todo token alice`, `todo migrate`, `todo events`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime, timedelta

import jwt

from todo_backend.settings import LOCAL_JWT_SECRET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="todo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve every function behind one gateway, as `make run` does")
    run.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    scaling = run.add_mutually_exclusive_group()
    scaling.add_argument(
        "--warm", action="store_true", help="start every function now and keep it up (no scale to zero)"
    )
    scaling.add_argument(
        "--idle-seconds",
        type=float,
        default=30.0,
        help="stop a function after this long without a request, event or tick (default 30)",
    )
    token = commands.add_parser("token", help="print a bearer token for a user of the local stack")
    token.add_argument("user", help="the token's subject: the user id the functions see")
    token.add_argument("--hours", type=float, default=24.0, help="lifetime (default 24)")
    commands.add_parser("migrate", help="apply database migrations to DATABASE_URL")
    events = commands.add_parser("events", help="print each CloudEvent on the topics as it arrives")
    events.add_argument("--from-beginning", action="store_true", help="replay what the topics hold")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # One line per proxied request and per health probe, and alembic's plugin list, drown the rest.
    for noisy in ("httpx", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "run":
        from todo_backend.devstack.runner import run as run_stack

        run_stack(args.port, None if args.warm else args.idle_seconds)
    elif args.command == "token":
        print(mint_token(args.user, timedelta(hours=args.hours)))
    elif args.command == "migrate":
        return _migrate()
    elif args.command == "events":
        return _tail_events(args.from_beginning)
    return 0


def _tail_events(from_beginning: bool) -> int:
    from todo_backend.devstack.events import main as tail
    from todo_backend.devstack.runner import STATE_FILE, data_root, running_stack
    from todo_backend.settings import Settings

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        # The broker the running `todo run` uses, whichever port it got or external broker it was given.
        state = running_stack(data_root())
        if state is None:
            where = data_root() / STATE_FILE
            print(
                f"todo events: no running stack wrote {where}; start `make run` or set "
                "KAFKA_BOOTSTRAP_SERVERS",
                file=sys.stderr,
            )
            return 2
        bootstrap = str(state["kafka_bootstrap_servers"])
    print(f"tailing the topics on {bootstrap}", file=sys.stderr)
    # Settings wants a database and a secret; the tail needs neither.
    settings = Settings(
        database_url="unused",
        jwt_secret=LOCAL_JWT_SECRET,
        todo_env="local",
        kafka_bootstrap_servers=bootstrap,
    )
    tail(settings, from_beginning)
    return 0


def mint_token(user: str, lifetime: timedelta) -> str:
    """An HS256 token as the functions verify it, with the same secret, issuer and audience."""
    # Read here rather than through Settings, which insists on a DATABASE_URL a token does not need.
    secret = os.environ.get("JWT_SECRET") or LOCAL_JWT_SECRET
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user, "iat": now, "exp": now + lifetime}
    if issuer := os.environ.get("JWT_ISSUER"):
        claims["iss"] = issuer
    if audience := os.environ.get("JWT_AUDIENCE"):
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def _migrate() -> int:
    from todo_backend.migrations import upgrade

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("todo migrate: set DATABASE_URL (`make run` migrates its own database)", file=sys.stderr)
        return 2
    upgrade(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
