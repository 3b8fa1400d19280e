"""Access tokens: what is accepted and every shape that must be refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from jose import jwt

from roomchat.security import InvalidTokenError, create_access_token, decode_access_token
from tests.conftest import TEST_SECRET, register


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def now() -> int:
    return int(datetime.now(UTC).timestamp())


def test_round_trip() -> None:
    token = create_access_token(subject="alice", secret_key=TEST_SECRET, minutes=5)
    claims = decode_access_token(token, secret_key=TEST_SECRET)
    assert claims.subject == "alice"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=5)


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


def test_the_lifetime_limit_is_a_setting() -> None:
    day = {"sub": "alice", "iat": now(), "exp": now() + 23 * 3600}
    token = jwt.encode(day, TEST_SECRET)
    assert decode_access_token(token, secret_key=TEST_SECRET).subject == "alice"
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, secret_key=TEST_SECRET, max_lifetime=timedelta(hours=1))


@pytest.mark.parametrize("kind", list(bad_tokens()))
def test_bad_tokens_are_refused(kind: str) -> None:
    with pytest.raises(InvalidTokenError):
        decode_access_token(bad_tokens()[kind], secret_key=TEST_SECRET)


@pytest.mark.parametrize("kind", [*bad_tokens(), "unregistered user"])
async def test_bad_tokens_get_401_over_http(client: httpx.AsyncClient, kind: str) -> None:
    await register(client, "alice")
    tokens = bad_tokens()
    tokens["unregistered user"] = create_access_token(
        subject="mallory", secret_key=TEST_SECRET, minutes=5
    )
    response = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {tokens[kind]}"}
    )
    assert response.status_code == 401


async def test_a_token_minted_by_a_trusted_backend_is_accepted(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    minted = jwt.encode({"sub": "alice", "iat": now(), "exp": now() + 60}, TEST_SECRET)
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {minted}"})
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
