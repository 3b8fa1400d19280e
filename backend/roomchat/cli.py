"""The roomchat command line: serve, manage users, and talk to a server as a client."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Sequence

import uvicorn

from roomchat.client import Client, RoomchatError
from roomchat.config import ClientSettings, Settings
from roomchat.server import uvicorn_options


class CommandError(Exception):
    """A failure to report in one line, with exit status 1."""


NO_PASSWORD = "no password: set ROOMCHAT_PASSWORD or use a terminal"  # noqa: S105


def ask_password(prompt: str) -> str:
    """Ask on the terminal; with none (a pipe, cron, ``</dev/null``) fail in one line."""
    if not sys.stdin.isatty():
        raise CommandError(NO_PASSWORD)
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CommandError(NO_PASSWORD) from None


def database_for_users(settings: Settings, *, create: bool) -> str:
    """The database ``user`` commands write to, as shown to the operator (no password).

    The default is ``./roomchat.db`` in the current folder: run from elsewhere, a
    command would quietly make a new, empty database that no server reads. So a SQLite
    file that does not exist is refused, unless ``create`` (``user add`` with
    ``--create-database``, or with ``ROOMCHAT_DATABASE_URL`` set on purpose).
    """
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return shown
    path = Path(url.database).resolve()
    if path.exists():
        return str(path)
    if create:
        return f"{path} (a new database)"
    raise CommandError(
        f"there is no database at {path}: run this in the folder the server runs in, "
        "set ROOMCHAT_DATABASE_URL as the server has it, or pass --create-database"
    )


def serve(args: argparse.Namespace) -> int:
    settings = Settings()
    uvicorn.run(
        "roomchat.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        **uvicorn_options(settings, workers=args.workers),
    )
    return 0


def user_add(args: argparse.Namespace) -> int:
    from roomchat.accounts.admin import InvalidUserError, add_user
    from roomchat.store import UsernameTakenError
    from roomchat.store.engine import SchemaOutOfDateError

    settings = Settings()
    chosen = "database_url" in settings.model_fields_set
    database = database_for_users(settings, create=args.create_database or chosen)
    password = read_new_password(args)
    try:
        user = asyncio.run(add_user(settings, username=args.name, password=password))
    except (InvalidUserError, UsernameTakenError, SchemaOutOfDateError) as exc:
        raise CommandError(str(exc)) from None
    print(f"created user {user.username} (id {user.id}) in {database}")
    return 0


def read_new_password(args: argparse.Namespace) -> str:
    """From standard input (``--password-stdin``), or asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = ask_password(f"Password for {args.name}: ")
    if ask_password("Repeat the password: ") != password:
        raise CommandError("the passwords do not match")
    return password


def user_list(_args: argparse.Namespace) -> int:
    from roomchat.accounts.admin import list_users

    settings = Settings()
    database = database_for_users(settings, create=False)
    users = asyncio.run(list_users(settings))
    for user in users:
        created = user.created_at.strftime("%Y-%m-%d %H:%M UTC")
        print(f"{user.id:>6}  {user.username:<32}  {created}")
    print(f"{len(users)} user{'s' * (len(users) != 1)} in {database}")
    return 0


def user_passwd(args: argparse.Namespace) -> int:
    from roomchat.accounts.admin import InvalidUserError, UnknownUserError, set_password

    settings = Settings()
    database = database_for_users(settings, create=False)
    password = read_new_password(args)
    try:
        asyncio.run(set_password(settings, username=args.name, password=password))
    except InvalidUserError as exc:
        raise CommandError(str(exc)) from None
    except UnknownUserError as exc:
        raise CommandError(f"{exc} in {database}") from None
    print(f"changed the password of {args.name} in {database}")
    return 0


def user_delete(args: argparse.Namespace) -> int:
    from roomchat.accounts.admin import UnknownUserError, delete_user

    settings = Settings()
    database = database_for_users(settings, create=False)
    try:
        announced = asyncio.run(delete_user(settings, username=args.name))
    except UnknownUserError as exc:
        raise CommandError(f"{exc} in {database}") from None
    print(f"deleted user {args.name} from {database}: {announced.value}")
    return 0


def send(args: argparse.Namespace) -> int:
    async def post() -> None:
        async with client_from(args) as client:
            message = await client.post(args.room, args.text)
        print(f"sent message {message.id} to {message.room}")

    asyncio.run(post())
    return 0


def chat(args: argparse.Namespace) -> int:
    from roomchat.client.terminal import chat as run_chat

    async def talk() -> int:
        async with client_from(args) as client:
            return await run_chat(client, args.room)

    return asyncio.run(talk())


def client_from(args: argparse.Namespace) -> Client:
    """A client from the options, else ``ROOMCHAT_URL``/``_USERNAME``/``_PASSWORD``/``_TOKEN``."""
    env = ClientSettings()
    url = args.url or env.url
    token = args.token or (env.token.get_secret_value() if env.token else None)
    username = args.username or env.username
    password = env.password.get_secret_value() if env.password else None
    if username and password is None and token is None:
        password = ask_password(f"Password for {username}: ")
    if token is None and not username:
        raise CommandError(
            "give --username (the password is asked, or read from ROOMCHAT_PASSWORD) "
            "or --token (or set ROOMCHAT_USERNAME or ROOMCHAT_TOKEN)"
        )
    return Client(url, username=username, password=password, token=token)


def migrate(_args: argparse.Namespace) -> int:
    """Apply the migrations to ROOMCHAT_DATABASE_URL."""
    from sqlalchemy.engine import make_url

    from roomchat.store.engine import DatabaseBounds, create_engine
    from roomchat.store.engine import migrate as apply_migrations

    settings = Settings()

    async def run() -> None:
        # A migration may take long: no statement bound, but no waiting for ever on a lock.
        bounds = DatabaseBounds.of(settings, statement=False)
        engine = create_engine(settings.database_url, bounds)
        try:
            await apply_migrations(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"roomchat: {url} is at the latest migration")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomchat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve", help="serve the chat server (as `make run`)", description="Serve the chat server."
    )
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.set_defaults(handler=serve)
    migrate_parser = commands.add_parser(
        "migrate", help="apply the database migrations to ROOMCHAT_DATABASE_URL"
    )
    migrate_parser.set_defaults(handler=migrate)

    user_parser = commands.add_parser(
        "user", help="manage users in the configured database", description="Manage users."
    )
    user_commands = user_parser.add_subparsers(
        dest="user_command", required=True, metavar="COMMAND"
    )
    add_parser = user_commands.add_parser(
        "add",
        help="create a user (asks for the password twice)",
        description="Create a user directly in ROOMCHAT_DATABASE_URL (the server need not run).",
    )
    add_parser.add_argument("name", help="3-32 of A-Z a-z 0-9 _ . -")
    add_parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_parser.add_argument(
        "--create-database",
        action="store_true",
        help="start a new database if ROOMCHAT_DATABASE_URL's file does not exist yet",
    )
    add_parser.set_defaults(handler=user_add)
    list_parser = user_commands.add_parser(
        "list",
        help="list the users (id, name, created)",
        description="List the users of ROOMCHAT_DATABASE_URL, by id.",
    )
    list_parser.set_defaults(handler=user_list)
    passwd_parser = user_commands.add_parser(
        "passwd",
        help="set a user's password (asks for it twice)",
        description="Set a user's password in ROOMCHAT_DATABASE_URL, with the rules of "
        "registration. Tokens already issued keep working until they expire.",
    )
    passwd_parser.add_argument("name")
    passwd_parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd_parser.set_defaults(handler=user_passwd)
    delete_parser = user_commands.add_parser(
        "delete",
        aliases=["remove"],
        help="delete a user; running servers refuse their tokens and close their sockets",
        description="Delete a user from ROOMCHAT_DATABASE_URL (their messages stay). Running "
        "servers refuse the user's tokens at once and close their sockets (1008): with "
        "ROOMCHAT_REDIS_URL set, every worker is told through Redis.",
    )
    delete_parser.add_argument("name")
    delete_parser.set_defaults(handler=user_delete)

    client_options = argparse.ArgumentParser(add_help=False)
    client_options.add_argument(
        "--url", help="the server (default: ROOMCHAT_URL, else http://127.0.0.1:8000)"
    )
    client_options.add_argument(
        "--username",
        help="log in as (default: ROOMCHAT_USERNAME); password: ROOMCHAT_PASSWORD or asked",
    )
    client_options.add_argument(
        "--token", help="an access token (default: ROOMCHAT_TOKEN, which `ps` does not show)"
    )

    send_parser = commands.add_parser(
        "send",
        parents=[client_options],
        help="post one message to a room",
        description="Post one message to a room over HTTP.",
    )
    send_parser.add_argument("room")
    send_parser.add_argument("text")
    send_parser.set_defaults(handler=send)

    chat_parser = commands.add_parser(
        "chat",
        parents=[client_options],
        help="chat in a room in this terminal",
        description="Chat in a room: incoming messages above, a prompt below. "
        "/who lists who is online, /quit or Ctrl-D leaves.",
    )
    chat_parser.add_argument("room")
    chat_parser.set_defaults(handler=chat)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (CommandError, RoomchatError) as exc:
        print(f"roomchat {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
