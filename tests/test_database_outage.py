"""PostgreSQL going away while the server runs (issue 15, item 5).

A cluster of the test's own is stopped under a running server: every route that needs
the database answers ``503`` with JSON ``{"detail"}`` and ``Retry-After`` (the contract's
"while the database is away"), never a ``500`` or plain text; the routes that do not
need it keep answering; a socket that cannot be admitted is refused with ``503``; and
once PostgreSQL is back, everything works again without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy.exc

from roomchat.api.errors import DATABASE_UNAVAILABLE
from roomchat.store.engine import create_engine
from tests import services
from tests.conftest import PASSWORD, live_token
from tests.helpers import free_port
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


class RecoveringPostgres:
    """A port that answers every PostgreSQL connection as a server still recovering after
    a restart does: ``FATAL 57P03 the database system is not yet accepting connections``."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def __aenter__(self) -> RecoveringPostgres:
        self._server = await asyncio.start_server(self._refuse, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(4), "big")
                code = int.from_bytes(await reader.readexactly(4), "big")
                await reader.readexactly(length - 8)
                if code == SSL_REQUEST:
                    writer.write(b"N")  # no TLS here: go on in the clear
                    continue
                fields = b"".join(
                    kind + text.encode() + b"\0"
                    for kind, text in [
                        (b"S", "FATAL"),
                        (b"V", "FATAL"),
                        (b"C", "57P03"),
                        (b"M", "the database system is not yet accepting connections"),
                    ]
                )
                body = fields + b"\0"
                writer.write(b"E" + (len(body) + 4).to_bytes(4, "big") + body)
                await writer.drain()
                return
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


SSL_REQUEST = 80877103


async def test_a_postgresql_still_recovering_is_an_outage_not_a_server_error() -> None:
    """Found by ``make chaos``: a handshake just as PostgreSQL came back up met asyncpg's
    ``CannotConnectNowError``, which SQLAlchemy raises as a bare ``DBAPIError``, and
    answered 500. The engine makes it an ``OperationalError``: a 503 like any outage."""
    async with RecoveringPostgres() as recovering:
        engine = create_engine(recovering.url)
        try:
            with pytest.raises(DATABASE_UNAVAILABLE) as refused:
                async with engine.connect():
                    pass
        finally:
            await engine.dispose()
    assert isinstance(refused.value, sqlalchemy.exc.OperationalError)
    assert "not yet accepting connections" in str(refused.value)
