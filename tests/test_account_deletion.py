"""A deleted account: its tokens refused and its sockets closed at once, on every worker,
and a name registered again does not inherit the old account's tokens."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from jose import jwt
from sqlalchemy import select, update

from roomchat.accounts.admin import delete_user
from roomchat.store.engine import create_engine
from roomchat.store.schema import User
from tests.conftest import PASSWORD, TEST_SECRET, live_token, login, register
from tests.live import LiveServer
from tests.wsclient import open_socket, recv_type, refused_status, room_url, wait_close_frame

CLI_TIMEOUT = 60.0


def now() -> int:
    return int(datetime.now(UTC).timestamp())


async def backdate(server: LiveServer, username: str, seconds: int) -> int:
    """Make ``username``'s account ``seconds`` older; return its id."""
    engine = create_engine(server.settings.database_url)
    try:
        async with engine.begin() as connection:
            created = datetime.now(UTC) - timedelta(seconds=seconds)
            await connection.execute(
                update(User).where(User.username == username).values(created_at=created)
            )
            user_id: int = (
                await connection.execute(select(User.id).where(User.username == username))
            ).scalar_one()
            return user_id
    finally:
        await engine.dispose()


async def me(server: LiveServer, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        return response.status_code


async def test_a_name_registered_again_does_not_inherit_the_old_accounts_tokens(
    live: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        await register(client, "alice")
    old_id = await backdate(live, "alice", 120)
    # Tokens issued a minute ago to the old account: one as a login issues them (with its
    # id), one minted by a trusted backend (only sub, iat, exp).
    issued = {"sub": "alice", "iat": now() - 60, "exp": now() + 600}
    old_tokens = [
        jwt.encode({**issued, "uid": old_id}, TEST_SECRET),
        jwt.encode(issued, TEST_SECRET),
    ]
    await delete_user(live.settings, username="alice")
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        await register(client, "alice")  # someone else takes the name
        new_token = await login(client, "alice")
    for token in old_tokens:
        assert await me(live, token) == 401
        assert await refused_status(room_url(live.ws_url, "lobby", token)) == 401
    assert await me(live, new_token) == 200
    async with await open_socket(room_url(live.ws_url, "lobby", new_token)) as ws:
        await recv_type(ws, "presence")


async def roomchat_cli(server: LiveServer, tmp_path: Path, *argv: str) -> tuple[int, str]:
    """Run ``python -m roomchat …`` against the server's database (and Redis)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCHAT_")}
    env["ROOMCHAT_DATABASE_URL"] = server.settings.database_url
    if server.settings.redis_url:
        env["ROOMCHAT_REDIS_URL"] = server.settings.redis_url
        env["ROOMCHAT_REDIS_PREFIX"] = server.settings.redis_prefix
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomchat",
        *argv,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_deleting_a_user_ends_their_sockets_and_tokens_on_every_worker(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    a, b = live_server(), live_server()  # two workers: one database (and Redis, scaled)
    zed, bob = await live_token(a, "zed"), await live_token(a, "bob")
    zed_sockets = [await open_socket(room_url(s.ws_url, "lobby", zed)) for s in (a, b)]
    bob_socket = await open_socket(room_url(a.ws_url, "lobby", bob))
    for ws in [*zed_sockets, bob_socket]:
        await recv_type(ws, "presence")
    headers = {"Authorization": f"Bearer {zed}"}
    async with httpx.AsyncClient(base_url=b.http_url, headers=headers) as client:
        posted = await client.post("/api/rooms/lobby/messages", json={"text": "before"})
        assert posted.status_code == 201

    code, output = await roomchat_cli(a, tmp_path, "user", "delete", "zed")
    assert code == 0, output
    assert "deleted user zed" in output

    for ws in zed_sockets:  # closed by the server, on both workers, with the reason
        assert await wait_close_frame(ws) == (1008, "session ended")
    for server in (a, b):
        assert await me(server, zed) == 401
        assert await refused_status(room_url(server.ws_url, "lobby", zed)) == 401
        async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as client:
            post = await client.post("/api/rooms/lobby/messages", json={"text": "after"})
            assert post.status_code == 401  # not a misleading store_unavailable
    # Everyone else carries on, and zed's messages stay, under the name they had.
    await bob_socket.send("still here")
    async with asyncio.timeout(10):  # zed's "before" may come first, from the other worker
        while (await recv_type(bob_socket, "message"))["text"] != "still here":
            pass
    async with httpx.AsyncClient(base_url=a.http_url) as client:
        bob_headers = {"Authorization": f"Bearer {bob}"}
        history = await client.get("/api/rooms/lobby/messages", headers=bob_headers)
        assert [(m["user"], m["text"]) for m in history.json()["messages"]] == [
            ("zed", "before"),
            ("bob", "still here"),
        ]
    await bob_socket.close()

    code, output = await roomchat_cli(a, tmp_path, "user", "delete", "zed")
    assert code == 1
    assert "no user is called 'zed'" in output
    assert PASSWORD not in output
