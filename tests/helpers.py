"""Pieces several test modules share (a test module never imports from another)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from jose import jwt

from roomchat.accounts.security import create_access_token

if TYPE_CHECKING:
    from tests.live import LiveServer

#: The key every test app signs tokens with (``conftest.make_settings``).
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"

#: Every test user's password.
PASSWORD = "correct horse battery"

#: The headers every HTTP response carries (the page's CSP aside).
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

#: A real database error on every insert into messages (``ALLOW_INSERTS`` ends it), made
#: from another connection: ``{dialect: statements}``.
REFUSE_INSERTS = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN "
        "SELECT RAISE(ABORT, 'disk I/O error, say'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS "
        "$$ BEGIN RAISE EXCEPTION 'disk I/O error, say'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}
ALLOW_INSERTS = {
    "sqlite": ["DROP TRIGGER refuse"],
    "postgresql": ["DROP TRIGGER refuse ON messages", "DROP FUNCTION refuse()"],
}


def free_port() -> int:
    """A loopback port nothing listens on now (for a server about to start there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def register(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> Any:
    response = await client.post(
        "/api/auth/register", json={"username": username, "password": password}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/api/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def live_token(server: LiveServer, username: str) -> str:
    """Register ``username`` on a live server and log in; return the access token."""
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        await register(client, username)
        return await login(client, username)


class FakeClock:
    """A monotonic clock the test moves (``clock.now += 60``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingContext:
    """Wraps passlib's context and records how many hashes ran at once, and in what
    order they started (``order``: ``"hash"`` for a registration, ``"verify"`` a login)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0
        self.order: list[str] = []

    def count(self, method: str) -> int:
        with self._lock:
            return self.order.count(method)

    def _counted(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
            self.order.append(method)
        try:
            self.started(method)
            return getattr(self._inner, method)(*args)
        finally:
            with self._lock:
                self.running -= 1

    def started(self, method: str) -> None:
        """Called in the hashing thread once a call is counted, before it runs."""

    def hash(self, *args: Any) -> Any:
        return self._counted("hash", *args)

    def verify(self, *args: Any) -> Any:
        return self._counted("verify", *args)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def now() -> int:
    return int(datetime.now(UTC).timestamp())


def bad_tokens() -> dict[str, str]:
    valid = create_access_token(subject="alice", secret_key=TEST_SECRET, minutes=5)
    fresh = {"sub": "alice", "iat": now(), "exp": now() + 300}
    return {
        "empty": "",
        "garbage": "not-a-jwt",
        "truncated": valid[:-10],
        "wrong key": jwt.encode(fresh, "another-secret-key-of-sufficient-length!!"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(fresh)}.",
        "HS512": jwt.encode(fresh, TEST_SECRET, algorithm="HS512"),
        "expired": jwt.encode({**fresh, "iat": now() - 600, "exp": now() - 60}, TEST_SECRET),
        "future iat": jwt.encode({**fresh, "iat": now() + 3600, "exp": now() + 7200}, TEST_SECRET),
        "no sub": jwt.encode({"iat": now(), "exp": now() + 300}, TEST_SECRET),
        "no exp": jwt.encode({"sub": "alice", "iat": now()}, TEST_SECRET),
        "no iat": jwt.encode({"sub": "alice", "exp": now() + 300}, TEST_SECRET),
        "numeric sub": jwt.encode({**fresh, "sub": 42}, TEST_SECRET),
        # RFC 7515 §4.1.11: an extension we do not understand, marked critical.
        "crit": jwt.encode(fresh, TEST_SECRET, headers={"crit": ["exp"]}),
        "crit unknown": jwt.encode(fresh, TEST_SECRET, headers={"crit": ["x-roomchat"]}),
        # Out of datetime's range: once a 500 with a traceback.
        "exp 1e20": jwt.encode({**fresh, "exp": 1e20}, TEST_SECRET),
        "iat -1e12": jwt.encode({**fresh, "iat": -1e12}, TEST_SECRET),
        "exp Infinity": jwt.encode({**fresh, "exp": float("inf")}, TEST_SECRET),
        "iat true": jwt.encode({**fresh, "iat": True}, TEST_SECRET),
        # Longer than ROOMCHAT_MAX_TOKEN_LIFETIME (24 h by default).
        "lives 25 h": jwt.encode({**fresh, "exp": now() + 25 * 3600}, TEST_SECRET),
        "issued 2 days ago": jwt.encode({**fresh, "iat": now() - 2 * 86400}, TEST_SECRET),
        "uid not a number": jwt.encode({**fresh, "uid": "1"}, TEST_SECRET),
    }
