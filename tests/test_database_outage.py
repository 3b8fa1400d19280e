"""PostgreSQL going away while the server runs (issue 15, item 5).

A cluster of the test's own is stopped under a running server: every route that needs
the database answers ``503`` with JSON ``{"detail"}`` and ``Retry-After`` (the contract's
"while the database is away"), never a ``500`` or plain text; the routes that do not
need it keep answering; a socket that cannot be admitted is refused with ``503``; and
once PostgreSQL is back, everything works again without a restart.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests import services
from tests.conftest import PASSWORD, live_token
from tests.live import LiveServer
from tests.wsclient import join, recv_type, refused_status, room_url

pytestmark = pytest.mark.embedded_only  # the scaled backend, on a PostgreSQL of its own


def answers_503_json(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers["content-type"] == "application/json"
        and isinstance(response.json().get("detail"), str)
        and int(response.headers.get("retry-after", "0")) >= 1
    )


async def test_every_route_answers_json_while_postgresql_is_down(
    live_server: Callable[..., LiveServer], private_postgres: services.PrivatePostgres
) -> None:
    server = live_server(database_url=private_postgres.url)
    token = await live_token(server, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    alice, _, _ = await join(server, "up", token)

    private_postgres.stop()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        needs_the_database = {
            "log in": await client.post(
                "/api/auth/token", data={"username": "alice", "password": PASSWORD}
            ),
            "register": await client.post(
                "/api/auth/register", json={"username": "bob", "password": PASSWORD}
            ),
            "list rooms": await client.get("/api/rooms", headers=auth),
            "read messages": await client.get("/api/rooms/up/messages", headers=auth),
            "post a message": await client.post(
                "/api/rooms/up/messages", json={"text": "while down"}, headers=auth
            ),
        }
        for what, response in needs_the_database.items():
            assert answers_503_json(response), (what, response, response.headers)
        # Presence is the broker's, and alice is a known user: no database needed.
        members = await client.get("/api/rooms/up/members", headers=auth)
        assert members.json() == {"members": ["alice"]}
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503

    # A socket on a room nobody is in here needs the room's newest id: refused, not dropped.
    assert await refused_status(room_url(server.ws_url, "empty", token)) == 503
    # A post on a live socket is answered with an error frame; the socket stays.
    await alice.send('{"type": "message", "text": "while down"}')
    error = await recv_type(alice, "error")
    assert error["code"] == "store_unavailable", error

    private_postgres.start()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        stored = await client.post(
            "/api/rooms/up/messages", json={"text": "back again"}, headers=auth
        )
        assert stored.status_code == 201, stored.text
    assert (await recv_type(alice, "message"))["text"] == "back again"
    await alice.close()
