"""Passwords and access tokens: pure functions and one small hashing service, no FastAPI."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeGuard

from jose import JWTError, jwk, jwt
from jose.backends.base import Key
from passlib.context import CryptContext

ALGORITHM = "HS256"
#: The longest password an account may have (registration refuses longer ones).
MAX_PASSWORD_CHARS = 256
IAT_LEEWAY_SECONDS = 30
#: ``ROOMCHAT_MAX_TOKEN_LIFETIME``'s default.
MAX_TOKEN_LIFETIME = timedelta(hours=24)
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)

log = logging.getLogger(__name__)

# OWASP's argon2id profile (19 MiB, 2 passes, 1 lane): strong, yet cheap enough that a
# bounded pool of hashers keeps the server responsive under a burst of logins.
_passwords = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


class InvalidTokenError(Exception):
    """The token is missing, malformed, forged, expired or lacks a claim."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    issued_at: datetime
    expires_at: datetime
    #: The ``uid`` claim of the tokens roomchat issues (a minted token may lack it).
    user_id: int | None = None


class Priority(IntEnum):
    """Which waiting hash runs first: a login before any registration."""

    LOGIN = 0
    REGISTRATION = 1


class PasswordHasher:
    """Hashes and verifies off the event loop, at most ``concurrency`` at a time.

    argon2 takes tens of MiB and milliseconds of CPU per call; a dedicated, small thread
    pool runs ``concurrency`` of them and the rest wait, so a burst cannot exhaust memory
    or starve the loop. They wait in priority order, not arrival order: a login (verify)
    goes ahead of every waiting registration (hash), so a flood of registrations delays
    a login by the hashes already running at most, not by the whole queue.
    """

    def __init__(self, *, concurrency: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._free = concurrency  # threads with nothing to do
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap
        self._order = itertools.count()  # first come, first served within a priority
        self._dummy_hash = _passwords.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """Hash a new password (registration): after every login waiting."""
        return str(await self._run(Priority.REGISTRATION, _passwords.hash, password))

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Verify; with no hash (unknown user) spend the same time and return False.

        A password longer than any account may have cannot match: it is checked against
        the dummy hash, the same work as any wrong password (passlib refuses one over
        4 KiB with an exception, which would otherwise answer 500).
        """
        if password_hash is None or len(password) > MAX_PASSWORD_CHARS:
            await self._run(Priority.LOGIN, _passwords.verify, "-", self._dummy_hash)
            return False
        return bool(await self._run(Priority.LOGIN, _passwords.verify, password, password_hash))

    async def _run(self, priority: Priority, func: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._free and not self._waiting:
            self._free -= 1
        else:
            turn = loop.create_future()
            heapq.heappush(self._waiting, (priority, next(self._order), turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # handed a thread just as it gave up: pass it on
                raise
        job: Future[Any] = self._pool.submit(func, *args)
        # The thread is free again only once the job is over (a job cancelled before it
        # started frees it at once), whatever became of the caller meanwhile.
        job.add_done_callback(lambda _job: _call_soon(loop, self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        """A thread is free: give it to the first waiting caller still there."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

    def close(self) -> None:
        for _, _, turn in self._waiting:
            turn.cancel()
        self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback)


def create_access_token(
    *,
    subject: str,
    secret_key: str,
    minutes: int,
    user_id: int | None = None,
    now: datetime | None = None,
) -> str:
    """A token for ``subject``; with ``user_id`` (the ``uid`` claim) it is bound to that
    account, so a later account of the same name cannot use it."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
    }
    if user_id is not None:
        claims["uid"] = user_id
    return str(jwt.encode(claims, secret_key, algorithm=ALGORITHM))


def decode_access_token(
    token: str, *, secret_key: str, max_lifetime: timedelta = MAX_TOKEN_LIFETIME
) -> TokenClaims:
    """Verify signature (HS256 only), expiry, the required claims and their ranges.

    Refused besides: a header naming any ``crit`` extension (RFC 7515 §4.1.11: we
    understand none), times that are not finite numbers, and a token meant to live
    longer than ``max_lifetime`` (``exp - iat``), which also keeps both times within
    what a ``datetime`` holds.
    """
    try:
        if "crit" in jwt.get_unverified_header(token):
            raise InvalidTokenError("unknown crit extension")
        claims = jwt.decode(
            token,
            _verification_key(secret_key),
            algorithms=[ALGORITHM],
            options={"require_sub": True, "require_iat": True, "require_exp": True},
        )
    except (JWTError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidTokenError(type(exc).__name__) from None
    subject, issued, expires = claims.get("sub"), claims.get("iat"), claims.get("exp")
    if not isinstance(subject, str) or not subject:
        raise InvalidTokenError("sub must be a non-empty string")
    if not _finite_number(issued) or not _finite_number(expires):
        raise InvalidTokenError("iat and exp must be numbers")
    now = datetime.now(UTC).timestamp()
    if expires <= now:  # jose compares whole seconds; a socket closes at the exact instant
        raise InvalidTokenError("expired")
    if issued > now + IAT_LEEWAY_SECONDS:
        raise InvalidTokenError("iat is in the future")
    if expires - issued > max_lifetime.total_seconds():
        raise InvalidTokenError("lifetime longer than ROOMCHAT_MAX_TOKEN_LIFETIME")
    user_id = claims.get("uid")
    if user_id is not None and (not isinstance(user_id, int) or isinstance(user_id, bool)):
        raise InvalidTokenError("uid must be a whole number")
    try:
        return TokenClaims(
            subject=subject,
            issued_at=datetime.fromtimestamp(issued, UTC),
            expires_at=datetime.fromtimestamp(expires, UTC),
            user_id=user_id,
        )
    except (OverflowError, OSError, ValueError):  # before year 1 or after 9999
        raise InvalidTokenError("iat or exp out of range") from None


def _finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@lru_cache(maxsize=4)
def _verification_key(secret_key: str) -> Key:
    """The HS256 key object for ``secret_key``, built once: given the bare string, jose
    tries to parse it as a JSON Web Key (raising and catching) on every decode."""
    key: Key = jwk.construct(secret_key, ALGORITHM)
    return key


def load_or_create_secret_key(data_dir: Path) -> str:
    """Read the key kept in ``data_dir``, creating it (mode 0600) on first start.

    The key is written to a private temporary file and hard-linked into place, so two
    workers starting at once agree on one key and neither reads a half-written file.
    """
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker won the race: use its key
        finally:
            temporary.unlink()
    log.warning(
        "ROOMCHAT_SECRET_KEY is not set: using the generated key kept in %s. Set "
        "ROOMCHAT_SECRET_KEY (32+ random characters, the same on every worker and host) "
        "in the environment or .env for production.",
        path,
    )
    return path.read_text(encoding="utf-8").strip()
