"""Creating users outside the server: ``roomchat user add``."""

from __future__ import annotations

from pydantic import ValidationError

from roomchat import store
from roomchat.config import Settings
from roomchat.db import create_engine, create_session_factory, create_tables
from roomchat.schemas import RegisterIn
from roomchat.security import PasswordHasher


class InvalidUserError(ValueError):
    """The name or password breaks the rules that registration applies."""


async def add_user(settings: Settings, *, username: str, password: str) -> store.User:
    """Validate as registration does, hash, and store; ``UsernameTakenError`` if taken."""
    try:
        RegisterIn(username=username, password=password)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise InvalidUserError(problems) from None
    engine = create_engine(settings.database_url)
    hasher = PasswordHasher(concurrency=1)
    try:
        await create_tables(engine)
        password_hash = await hasher.hash(password)
        async with create_session_factory(engine)() as session:
            return await store.create_user(session, username=username, password_hash=password_hash)
    finally:
        hasher.close()
        await engine.dispose()
