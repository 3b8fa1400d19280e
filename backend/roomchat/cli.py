"""The ``roomchat`` command line."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from roomchat.config import Settings
from roomchat.server import uvicorn_options


def serve(args: argparse.Namespace) -> None:
    settings = Settings()
    uvicorn.run(
        "roomchat.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        **uvicorn_options(settings),
    )


def migrate(_args: argparse.Namespace) -> None:
    """Apply the migrations to ROOMCHAT_DATABASE_URL."""
    import asyncio

    from sqlalchemy.engine import make_url

    from roomchat.db import create_engine
    from roomchat.db import migrate as apply_migrations

    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await apply_migrations(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"roomchat: {url} is at the latest migration")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomchat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the chat server (as `make run`)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.set_defaults(handler=serve)
    migrate_parser = commands.add_parser(
        "migrate", help="apply the database migrations to ROOMCHAT_DATABASE_URL"
    )
    migrate_parser.set_defaults(handler=migrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
