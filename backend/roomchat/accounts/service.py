"""Accounts: registration, login and turning a token into a registered user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from roomchat.accounts.known_users import KnownUsers
from roomchat.accounts.security import (
    InvalidTokenError,
    PasswordHasher,
    create_access_token,
    decode_access_token,
)
from roomchat.store import User, UsernameTakenError, UserStore


@dataclass(frozen=True, slots=True)
class Accounts:
    """What registration, login and the token check use."""

    users: UserStore
    hasher: PasswordHasher
    known_users: KnownUsers
    secret_key: str
    access_token_minutes: int
    max_token_lifetime: timedelta


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for, and until when."""

    user_id: int
    username: str
    expires_at: datetime


class LoginFailedError(Exception):
    """Unknown user or wrong password: deliberately indistinguishable."""


async def register(accounts: Accounts, *, username: str, password: str) -> User:
    """Create an account; ``UsernameTakenError`` when the name is taken.

    A taken name is found before hashing (registration says so anyway: 409), so probing
    names costs no hash; the unique index still decides between two at once.
    """
    if await accounts.users.get_user(username=username) is not None:
        raise UsernameTakenError(username)
    password_hash = await accounts.hasher.hash(password)
    return await accounts.users.create_user(username=username, password_hash=password_hash)


async def login(accounts: Accounts, *, username: str, password: str) -> tuple[str, int]:
    """Return ``(access_token, expires_in_seconds)`` or raise ``LoginFailedError``."""
    user = await accounts.users.get_user(username=username)
    # An unknown user still pays for one hash, so timing does not reveal which names exist.
    valid = await accounts.hasher.verify(password, user.password_hash if user else None)
    if user is None or not valid:
        raise LoginFailedError
    minutes = accounts.access_token_minutes
    token = create_access_token(
        subject=user.username, secret_key=accounts.secret_key, minutes=minutes, user_id=user.id
    )
    return token, minutes * 60


async def authenticate(accounts: Accounts, token: str | None) -> Principal:
    """Verify the token and that it belongs to a registered user; else ``InvalidTokenError``.

    Tokens name their user by ``sub``, so they are bound to the account too, or a name
    deleted and registered again would inherit the old account's tokens. The tokens
    issued here carry the account's id (``uid``). A minted token with only ``sub``,
    ``iat`` and ``exp`` is bound by time: issued before the account was created (to the
    second), it was another account's. SQLite may hand the id of a deleted newest
    account out again, so there every token is bound by time too (one host, one clock);
    PostgreSQL never reuses an id, so a ``uid`` is enough, whatever the hosts' clocks.
    """
    if not token:
        raise InvalidTokenError("no token")
    claims = decode_access_token(
        token, secret_key=accounts.secret_key, max_lifetime=accounts.max_token_lifetime
    )
    user = await accounts.known_users.find(claims.subject)
    if user is None:
        raise InvalidTokenError("sub is not a registered user")
    if claims.user_id is not None and claims.user_id != user.id:
        raise InvalidTokenError("issued to another account of that name")
    bound_by_time = claims.user_id is None or accounts.users.reuses_ids
    created = user.created_at.replace(microsecond=0)  # iat is in whole seconds
    if bound_by_time and claims.issued_at < created:
        raise InvalidTokenError("issued before the account was created")
    return Principal(user_id=user.id, username=user.username, expires_at=claims.expires_at)
