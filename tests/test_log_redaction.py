"""Tokens never reach a log: the real server's output after real requests, under
``roomchat serve`` (its own logging config) and plain ``uvicorn roomchat.main:app``
(uvicorn's, which the app's startup adds redaction to)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import PASSWORD, TEST_SECRET
from tests.serverprocess import ServerProcess
from tests.wsclient import open_socket, recv


@pytest.fixture(params=["roomchat-serve", "plain-uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
        "ROOMCHAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}",
        "ROOMCHAT_DATA_DIR": str(tmp_path / "data"),
        "ROOMCHAT_LOG_LEVEL": "debug",
    }
    process = ServerProcess(env, cwd=tmp_path, plain_uvicorn=request.param == "plain-uvicorn")
    process.wait_ready()
    yield process
    process.stop()


async def test_tokens_are_redacted_from_access_and_error_logs(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        body = {"username": "alice", "password": PASSWORD}
        await client.post("/api/auth/register", json=body)
        token = (await client.post("/api/auth/token", data=body)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        await client.get(f"/api/users/me?token={token}", headers=headers)
        await client.get(f"/api/rooms/bad%20room/messages?access_token={token}", headers=headers)
    async with await open_socket(f"{server.ws_url}/ws/lobby?token={token}") as ws:
        assert (await recv(ws))["type"] == "history"
    with pytest.raises(InvalidStatus):
        await open_socket(f"{server.ws_url}/ws/lobby?token={token}", origin="https://evil.example")
    forged = token[:-4] + "AAAA"
    with pytest.raises(InvalidStatus):
        await open_socket(f"{server.ws_url}/ws/lobby?since=x&token={forged}")

    output = server.stop()
    assert "token=[redacted]" in output
    assert "/ws/lobby" in output  # the requests were logged, only without their tokens
    for secret in (token, forged, token.split(".")[2], PASSWORD):
        assert secret not in output


async def test_percent_encoded_token_parameters_are_redacted_too(server: ServerProcess) -> None:
    """Starlette decodes query names, so ``?tok%65n=`` authenticates like ``?token=``: the
    log must not carry it, nor a token whose value is percent-encoded."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        body = {"username": "alice", "password": PASSWORD}
        await client.post("/api/auth/register", json=body)
        token = (await client.post("/api/auth/token", data=body)).json()["access_token"]
        await client.get(f"/api/users/me?tok%65n={token}&limit=1")
        await client.get(f"/api/users/me?%74oken={token}")
    encoded = "%65" + token[1:]  # "e" percent-encoded: decodes to the same token
    for query in (f"tok%65n={token}", f"since=0&TOK%45N={token}&tok%65n={token}"):
        async with await open_socket(f"{server.ws_url}/ws/lobby?{query}") as ws:
            assert (await recv(ws))["type"] == "history"  # it did authenticate
    async with await open_socket(f"{server.ws_url}/%77s/lobby?tok%65n={encoded}") as ws:
        assert (await recv(ws))["type"] == "history"
    with pytest.raises(InvalidStatus):
        await open_socket(
            f"{server.ws_url}/ws/lobby?tok%65n={token}", origin="https://evil.example"
        )

    output = server.stop()
    assert "/ws/lobby?[redacted]" in output
    assert "limit=1" in output  # what is not a token stays readable
    for secret in (token, encoded, token.split(".")[1], token.split(".")[2], PASSWORD):
        assert secret not in output
