"""Access tokens: what is accepted and every shape that must be refused."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from jose import jwt

from roomchat.accounts.security import InvalidTokenError, create_access_token, decode_access_token
from tests.conftest import TEST_SECRET, register
from tests.helpers import bad_tokens, now


def test_round_trip() -> None:
    token = create_access_token(subject="alice", secret_key=TEST_SECRET, minutes=5)
    claims = decode_access_token(token, secret_key=TEST_SECRET)
    assert claims.subject == "alice"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=5)


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


#: Refused before any lookup, so once; an unknown user is the store's word, so on both.
SHAPES = [pytest.param(kind, marks=pytest.mark.embedded_only) for kind in bad_tokens()]


@pytest.mark.parametrize("kind", [*SHAPES, "unregistered user"])
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
