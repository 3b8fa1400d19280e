"""The handshake: room, origin and token are checked before the socket is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from jose import jwt
from sqlalchemy import text

from roomchat.accounts.security import create_access_token
from roomchat.store.engine import create_engine
from tests.conftest import TEST_SECRET, live_token
from tests.helpers import bad_tokens
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, refused_status, room_url


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (None, 401),
        ("", 401),
        ("garbage", 401),
        (jwt.encode({"sub": "alice", "iat": 0, "exp": 1}, TEST_SECRET), 401),
        # Well formed, signed and current: refused only because no such user exists.
        (create_access_token(subject="ghost", secret_key=TEST_SECRET, minutes=30), 401),
    ],
)
async def test_bad_tokens_are_refused_with_401(
    live: LiveServer, token: str | None, status: int
) -> None:
    await live_token(live, "alice")
    assert await refused_status(room_url(live.ws_url, "lobby", token)) == status


async def test_bad_room_names_and_since_are_refused_with_422(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    for room in ("has%20space", "x" * 65, "semi;colon", "caf%C3%A9"):
        assert await refused_status(room_url(live.ws_url, room, token)) == 422
    for since in ("-1", "abc", "1.5"):
        url = f"{live.ws_url}/ws/lobby?token={token}&since={since}"
        assert await refused_status(url) == 422


async def test_foreign_origin_is_refused_with_403_and_own_origin_is_accepted(
    live: LiveServer,
) -> None:
    token = await live_token(live, "alice")
    url = room_url(live.ws_url, "lobby", token)
    assert await refused_status(url, origin="https://evil.example") == 403
    async with await open_socket(url, origin=live.http_url) as ws:
        assert (await recv(ws))["type"] == "history"
    async with await open_socket(url) as ws:  # API clients send no Origin
        assert (await recv(ws))["type"] == "history"


async def test_listed_origins_are_accepted(live_server: object) -> None:
    server: LiveServer = live_server(allowed_origins=["https://chat.example"])  # type: ignore[operator]
    token = await live_token(server, "alice")
    url = room_url(server.ws_url, "lobby", token)
    async with await open_socket(url, origin="https://chat.example") as ws:
        assert (await recv(ws))["type"] == "history"


async def test_a_minted_token_is_accepted(live: LiveServer) -> None:
    await live_token(live, "alice")
    now = int(datetime.now(UTC).timestamp())
    minted = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, TEST_SECRET)
    async with await open_socket(room_url(live.ws_url, "lobby", minted)) as ws:
        assert (await recv(ws))["type"] == "history"


@pytest.mark.embedded_only  # refused before any lookup: the backend plays no part
@pytest.mark.parametrize("kind", list(bad_tokens()))
async def test_every_wrong_token_shape_is_refused_at_the_handshake(
    live: LiveServer, kind: str
) -> None:
    await live_token(live, "alice")
    token = bad_tokens()[kind]
    assert await refused_status(room_url(live.ws_url, "lobby", token)) == 401


async def test_a_deleted_users_token_is_refused_on_sockets_and_http(live: LiveServer) -> None:
    token = await live_token(live, "zed")
    engine = create_engine(live.settings.database_url)  # SQLite or PostgreSQL
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users WHERE username = 'zed'"))
    await engine.dispose()
    assert await refused_status(room_url(live.ws_url, "lobby", token)) == 401
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_the_servers_own_host_with_the_wrong_scheme_is_refused(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    url = room_url(live.ws_url, "lobby", token)
    # A page on https://127.0.0.1:port is another origin than this ws:// server's.
    assert await refused_status(url, origin=f"https://127.0.0.1:{live.port}") == 403
    assert await refused_status(url, origin=f"http://127.0.0.1:{live.port + 1}") == 403


async def test_behind_a_tls_proxy_the_origin_must_be_https(live: LiveServer) -> None:
    """uvicorn applies X-Forwarded-Proto from a trusted proxy (here, loopback) to the scope."""
    token = await live_token(live, "alice")
    url = room_url(live.ws_url, "lobby", token)
    proxied = {"additional_headers": {"X-Forwarded-Proto": "https"}}
    async with await open_socket(url, origin=f"https://127.0.0.1:{live.port}", **proxied) as ws:
        assert (await recv(ws))["type"] == "history"
    assert await refused_status(url, origin=live.http_url, **proxied) == 403


async def test_listed_origins_match_exactly(live_server: object) -> None:
    server: LiveServer = live_server(allowed_origins=["https://chat.example"])  # type: ignore[operator]
    token = await live_token(server, "alice")
    url = room_url(server.ws_url, "lobby", token)
    for origin in (
        "http://chat.example",
        "https://chat.example:8443",
        "https://chat.example.evil.example",
        "https://evil.example",
        "null",
    ):
        assert await refused_status(url, origin=origin) == 403, origin
    async with await open_socket(url, origin="https://chat.example") as ws:
        assert (await recv(ws))["type"] == "history"


async def test_since_beyond_the_rooms_newest_id_is_refused_with_422(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live.http_url, headers=auth) as client:
        ids = []
        for room in ("a", "a", "b"):  # ids are global: b's message takes the next one
            response = await client.post(f"/api/rooms/{room}/messages", json={"text": "hi"})
            ids.append(response.json()["id"])
    newest_in_a, newest_in_b = ids[1], ids[2]
    assert await refused_status(room_url(live.ws_url, "a", token, since=newest_in_b)) == 422
    assert await refused_status(room_url(live.ws_url, "empty", token, since=1)) == 422
    async with await open_socket(room_url(live.ws_url, "a", token, since=newest_in_a)) as ws:
        assert (await recv(ws))["messages"] == []
    async with await open_socket(room_url(live.ws_url, "empty", token, since=0)) as ws:
        assert (await recv(ws))["messages"] == []
    async with await open_socket(room_url(live.ws_url, "a", token, since=ids[0])) as ws:
        assert [m["id"] for m in (await recv(ws))["messages"]] == [newest_in_a]
