"""Registration, login and /api/users/me through the HTTP API."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, login, register


async def test_register_login_and_me(client: httpx.AsyncClient) -> None:
    created = await register(client, "alice")
    assert created == {"id": created["id"], "username": "alice"}

    response = await client.post(
        "/api/auth/token", data={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600

    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == created


async def test_usernames_are_unique_ignoring_case(client: httpx.AsyncClient) -> None:
    await register(client, "Alice")
    response = await client.post(
        "/api/auth/register", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert "detail" in response.json()


async def test_login_accepts_any_case_and_keeps_the_registered_name(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "Alice")
    token = await login(client, "ALICE")
    me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "Alice"


@pytest.mark.embedded_only  # schema checks, answered before the store is asked
@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": PASSWORD},
        {"username": "x" * 33, "password": PASSWORD},
        {"username": "bad name", "password": PASSWORD},
        {"username": "émile", "password": PASSWORD},
        {"username": "alice", "password": "short"},
        {"username": "alice", "password": "p" * 257},
        {"username": "alice"},
        {"password": PASSWORD},
    ],
)
async def test_register_validates_input(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_register_accepts_the_edges_of_the_rules(client: httpx.AsyncClient) -> None:
    await register(client, "a.b", "p" * 8)
    await register(client, "Z" * 32, "p" * 256)
    await register(client, "under_score-dash")


async def test_unknown_user_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "alice")
    wrong = await client.post(
        "/api/auth/token", data={"username": "alice", "password": "not the password"}
    )
    unknown = await client.post(
        "/api/auth/token", data={"username": "nobody", "password": "not the password"}
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong.json() == unknown.json()


@pytest.mark.embedded_only  # no token to look up
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer garbage", "Basic YWxpY2U6eA=="])
async def test_me_requires_a_valid_bearer_token(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_healthz_and_page(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_openapi_offers_the_password_flow_for_the_authorize_button(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/auth/token"


@pytest.mark.parametrize("length", [257, 5000, 100_000])
async def test_a_password_longer_than_any_account_may_have_is_a_401(
    client: httpx.AsyncClient, length: int
) -> None:
    """passlib refuses passwords over 4 KiB with an exception; that was a 500."""
    await register(client, "alice")
    response = await client.post(
        "/api/auth/token", data={"username": "alice", "password": "x" * length}
    )
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Incorrect username or password"}
