"""Managing users outside the server: ``roomchat user add``, ``list``, ``passwd`` and
``delete``."""

from __future__ import annotations

import logging
from enum import Enum

from pydantic import ValidationError

from roomchat.accounts.security import PasswordHasher
from roomchat.accounts.watch import ACCOUNTS_CHANNEL, deletion_notice
from roomchat.api.schemas import RegisterIn
from roomchat.config import Settings
from roomchat.store import User, UserRef
from roomchat.store.engine import create_engine, prepare_schema
from roomchat.store.through_engine import EngineStore

log = logging.getLogger(__name__)


class InvalidUserError(ValueError):
    """The name or password breaks the rules that registration applies."""


class UnknownUserError(LookupError):
    """No user has that name."""


class Announced(Enum):
    """How the running servers heard of a deletion (see ``account_watch``)."""

    REDIS = "every worker was told through Redis"
    DATABASE = "the server notices it in the SQLite file"
    NOT = "the running servers were not told: its tokens work for 30 s more at most"


def check_account(username: str, password: str) -> None:
    """The rules registration applies, or ``InvalidUserError`` saying which broke."""
    try:
        RegisterIn(username=username, password=password)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise InvalidUserError(problems) from None


async def add_user(settings: Settings, *, username: str, password: str) -> User:
    """Validate as registration does, hash, and store; ``UsernameTakenError`` if taken.

    SQLite is migrated first, as the server does at startup; PostgreSQL must be at the
    latest migration (``SchemaOutOfDateError``). The command goes through the engine,
    another connection than a running server's store, which so notices the change."""
    check_account(username, password)
    engine = create_engine(settings.database_url)
    hasher = PasswordHasher(concurrency=1)
    try:
        await prepare_schema(engine)
        password_hash = await hasher.hash(password)
        return await EngineStore(engine).create_user(username=username, password_hash=password_hash)
    finally:
        hasher.close()
        await engine.dispose()


async def list_users(settings: Settings) -> list[UserRef]:
    """Every account, by id (a page at a time from the store)."""
    engine = create_engine(settings.database_url)
    users = EngineStore(engine)
    try:
        listed: list[UserRef] = []
        while page := await users.list_users(after=listed[-1].id if listed else 0):
            listed += page
        return listed
    finally:
        await engine.dispose()


async def set_password(settings: Settings, *, username: str, password: str) -> None:
    """Give an account a new password (the rules of registration apply); tokens already
    issued keep working until they expire."""
    check_account(username, password)
    engine = create_engine(settings.database_url)
    hasher = PasswordHasher(concurrency=1)
    try:
        password_hash = await hasher.hash(password)
        users = EngineStore(engine)
        if not await users.set_password_hash(username=username, password_hash=password_hash):
            raise UnknownUserError(f"no user is called {username!r}")
    finally:
        hasher.close()
        await engine.dispose()


async def delete_user(settings: Settings, *, username: str) -> Announced:
    """Delete the user (their messages stay, with their name), then tell the running
    servers, which refuse the user's tokens and close their sockets at once."""
    engine = create_engine(settings.database_url)
    try:
        if not await EngineStore(engine).delete_user(username=username):
            raise UnknownUserError(f"no user is called {username!r}")
        sqlite = engine.dialect.name == "sqlite"
    finally:
        await engine.dispose()
    if not settings.redis_url:
        return Announced.DATABASE if sqlite else Announced.NOT
    from roomchat.ops.redis import REDIS_ERRORS, redis_client
    from roomchat.realtime.broker.redis import room_channel

    client = redis_client(settings.redis_url)
    try:
        channel = room_channel(settings.redis_prefix, ACCOUNTS_CHANNEL)
        await client.publish(channel, deletion_notice(username))
    except REDIS_ERRORS as exc:
        log.warning("could not announce the deletion through Redis: %r", exc)
        return Announced.NOT
    finally:
        await client.aclose()
    return Announced.REDIS
