"""Every error is JSON ``{"detail"}``: malformed input a short 4xx, a server error a bare 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from roomchat.config import Settings
from roomchat.main import create_app
from tests.conftest import PASSWORD, live_token
from tests.helpers import SECURITY_HEADERS
from tests.live import LiveServer

#: How errors look does not depend on the backend: these run once.
pytestmark = pytest.mark.embedded_only

JSON = {"Content-Type": "application/json"}

#: Bodies Python's json module parses but JSON does not allow (NaN, infinities), or that
#: no UTF-8 text can hold (lone surrogates); ``{}`` is where the value goes.
MALFORMED_VALUES = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e999": "1e999",
    "lone surrogate": r'"\ud800"',
    "lone low surrogate in text": r'"caf\udfff!"',
    "NaN in a list": "[NaN]",
}


def assert_json_error(response: httpx.Response, case: str) -> None:
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", case
    assert "detail" in response.json(), case
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (case, name)


async def test_malformed_json_on_register_is_a_4xx(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        for case, value in MALFORMED_VALUES.items():
            for body in (
                f'{{"username": {value}, "password": "{PASSWORD}"}}',
                f'{{"username": "alice", "password": {value}}}',
                f'{{"username": "alice", "password": "{PASSWORD}", {value}: 1}}',
                value,
            ):
                response = await client.post("/api/auth/register", content=body, headers=JSON)
                assert_json_error(response, f"{case}: {body}")
        # A password that is long enough, but with a lone surrogate in it.
        body = f'{{"username": "alice", "password": "{PASSWORD}\\ud800"}}'
        assert_json_error(await client.post("/api/auth/register", content=body, headers=JSON), body)
        # Nothing was registered along the way.
        ok = await client.post(
            "/api/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        assert ok.status_code == 201


async def test_malformed_json_on_an_authenticated_post_is_a_4xx(live: LiveServer) -> None:
    token = await live_token(live, "alice")
    auth = {"Authorization": f"Bearer {token}"} | JSON
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        for case, value in MALFORMED_VALUES.items():
            for body in (f'{{"text": {value}}}', f'{{"text": "hi", {value}: 1}}', value):
                response = await client.post(
                    "/api/rooms/lobby/messages", content=body, headers=auth
                )
                assert_json_error(response, f"{case}: {body}")
        page = await client.get("/api/rooms/lobby/messages", headers=auth)
        assert page.json()["messages"] == []  # nothing was stored


async def test_a_big_invalid_body_gets_a_short_422(live: LiveServer) -> None:
    big = "x" * 500_000
    bodies = {
        "a long username": {"username": big, "password": PASSWORD},
        "a missing field (whose input is the whole body)": {"username": big},
        "a long unknown field name": {"username": "alice", "password": PASSWORD, big: 1},
        "a long list": {"username": ["y"] * 100_000, "password": PASSWORD},
    }
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        for case, body in bodies.items():
            response = await client.post("/api/auth/register", json=body)
            assert response.status_code == 422, case
            assert len(response.content) < 2000, (case, len(response.content))
            for error in response.json()["detail"]:
                assert {"type", "loc", "msg"} <= error.keys(), case


async def test_a_422_still_shows_a_short_input_as_it_was(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        response = await client.post(
            "/api/auth/register", json={"username": "a b", "password": PASSWORD}
        )
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "username"]
        assert error["input"] == "a b"
        long_name = await client.post(
            "/api/auth/register", json={"username": "é" * 1000, "password": PASSWORD}
        )
        [error] = long_name.json()["detail"]
        assert error["input"].startswith("é" * 50)
        assert len(error["input"]) <= 101


def app_with_a_bug(settings: Settings) -> FastAPI:
    """roomchat's app plus one route with a bug in it: the way a real 500 happens."""
    app = create_app(settings)

    async def buggy() -> dict[str, str]:
        raise RuntimeError("a bug: secret internals /srv/roomchat/x.py")

    app.add_api_route("/api/buggy", buggy)
    return app


async def test_a_server_error_is_json_with_the_security_headers_and_no_traceback(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(app_factory=app_with_a_bug)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.get("/api/buggy")
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": "Internal Server Error"}
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, name
        assert "content-security-policy" in response.headers
        assert "secret internals" not in response.text
        assert "Traceback" not in response.text
        # The server carries on.
        assert (await client.get("/healthz")).status_code == 200
