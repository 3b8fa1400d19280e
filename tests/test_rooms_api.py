"""The HTTP room routes: list, history pages, post, members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import live_token
from tests.live import LiveServer
from tests.waiting import eventually
from tests.wsclient import new_member, open_socket, recv, recv_type, room_url

Auth = dict[str, str]


@pytest.fixture
async def alice(user_token: Callable[[str], Any]) -> Auth:
    return {"Authorization": f"Bearer {await user_token('alice')}"}


async def post(client: httpx.AsyncClient, auth: Auth, room: str, text: str) -> dict[str, Any]:
    response = await client.post(f"/api/rooms/{room}/messages", json={"text": text}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_post_then_page_through_history(client: httpx.AsyncClient, alice: Auth) -> None:
    posted = [await post(client, alice, "lobby", f"m{n}") for n in range(7)]
    assert posted[0]["user"] == "alice"
    assert posted[0]["room"] == "lobby"
    assert [p["id"] for p in posted] == sorted(p["id"] for p in posted)

    async def page(**params: int) -> list[str]:
        response = await client.get("/api/rooms/lobby/messages", params=params, headers=alice)
        assert response.status_code == 200
        return [m["text"] for m in response.json()["messages"]]

    assert await page() == [f"m{n}" for n in range(7)]
    assert await page(limit=3) == ["m4", "m5", "m6"]
    assert await page(limit=3, before=posted[4]["id"]) == ["m1", "m2", "m3"]
    assert await page(limit=2, after=posted[1]["id"]) == ["m2", "m3"]
    assert await page(after=posted[6]["id"]) == []
    assert await page(after=posted[1]["id"], before=posted[4]["id"]) == ["m2", "m3"]


@pytest.mark.embedded_only  # schema checks, answered before the store is asked
@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=x", "before=-1", "after=x"],
)
async def test_bad_history_queries_get_422(
    client: httpx.AsyncClient, alice: Auth, query: str
) -> None:
    response = await client.get(f"/api/rooms/lobby/messages?{query}", headers=alice)
    assert response.status_code == 422


@pytest.mark.embedded_only  # schema checks, answered before the store is asked
@pytest.mark.parametrize(
    "body",
    [{"text": ""}, {"text": "   "}, {"text": "x" * 4001}, {"text": "nul \x00"}, {"text": 5}, {}],
)
async def test_bad_posts_get_422(
    client: httpx.AsyncClient, alice: Auth, body: dict[str, Any]
) -> None:
    response = await client.post("/api/rooms/lobby/messages", json=body, headers=alice)
    assert response.status_code == 422
    assert "detail" in response.json()


@pytest.mark.embedded_only  # schema checks, answered before the store is asked
@pytest.mark.parametrize("room", ["has space", "x" * 65, "semi;colon", "café"])
async def test_bad_room_names_get_422(client: httpx.AsyncClient, alice: Auth, room: str) -> None:
    for path in (f"/api/rooms/{room}/messages", f"/api/rooms/{room}/members"):
        assert (await client.get(path, headers=alice)).status_code == 422


@pytest.mark.embedded_only  # no token to look up
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/lobby/messages"),
        ("POST", "/api/rooms/lobby/messages"),
        ("GET", "/api/rooms/lobby/members"),
    ],
)
async def test_room_routes_need_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={"text": "hi"})
    assert response.status_code == 401


async def test_posting_too_fast_over_http_gets_429(live_server: Callable[..., LiveServer]) -> None:
    # A rate near zero: nothing refills while the test runs, however slow the machine.
    server = live_server(messages_per_second=0.001, message_burst=5)
    auth = {"Authorization": f"Bearer {await live_token(server, 'bob')}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth) as client:
        statuses = [
            await client.post("/api/rooms/r/messages", json={"text": "x"}) for _ in range(7)
        ]
    assert [r.status_code for r in statuses] == [201] * 5 + [429] * 2  # the burst, then none
    assert int(statuses[-1].headers["retry-after"]) >= 1


async def test_rooms_members_and_http_posts_reach_sockets(live: LiveServer) -> None:
    alice = await live_token(live, "alice")
    headers = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=live.http_url, headers=headers) as client:
        await client.post("/api/rooms/archive/messages", json={"text": "old"})
        ws, _, bob = await new_member(live, "bob")

        rooms = (await client.get("/api/rooms")).json()
        assert rooms == [{"name": "archive", "members": 0}, {"name": "lobby", "members": 1}]
        members = (await client.get("/api/rooms/lobby/members")).json()
        assert members == {"members": ["bob"]}

        posted = (await client.post("/api/rooms/lobby/messages", json={"text": "hi bob"})).json()
        delivered = await recv_type(ws, "message")
        assert delivered == {"type": "message", **posted}
        await ws.close()

        async def nobody_left() -> bool:
            # The server answers the close frame before its handler has left the room.
            response = await client.get("/api/rooms/lobby/members")
            return bool(response.json() == {"members": []})

        await eventually(nobody_left)
    async with await open_socket(room_url(live.ws_url, "lobby", bob)) as ws:
        history = await recv(ws)
    assert history["messages"][-1] == posted  # stored before it was delivered


async def test_rooms_are_listed_in_pages_of_names_in_order(live: LiveServer) -> None:
    alice = await live_token(live, "alice")
    stored = ["b-3", "A-1", "_x", "Z9", "a_2", "B"]
    online = (await new_member(live, "bob", "m-online")).ws  # members, no messages
    headers = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=live.http_url, headers=headers) as client:
        for room in stored:
            await post(client, headers, room, "hi")
        listed: list[str] = []
        after: dict[str, str] = {}
        for _ in range(10):  # bounded: 7 rooms, pages of 2
            page = (await client.get("/api/rooms", params={"limit": 2, **after})).json()
            assert len(page) <= 2
            listed += [room["name"] for room in page]
            if len(page) < 2:
                break
            after = {"after": page[-1]["name"]}
        assert listed == sorted([*stored, "m-online"])
        assert len((await client.get("/api/rooms")).json()) == 7  # default limit 100
        for query in ("limit=0", "limit=201", "after=no%20spaces", f"after={'x' * 65}"):
            assert (await client.get(f"/api/rooms?{query}")).status_code == 422
    await online.close()


async def test_creating_rooms_past_the_hourly_quota_is_429(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(rooms_per_user=3)
    alice, bob = await live_token(server, "alice"), await live_token(server, "bob")
    auth = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth) as client:

        async def post_status(room: str) -> int:
            response = await client.post(f"/api/rooms/{room}/messages", json={"text": "x"})
            return response.status_code

        assert await post_status("r1") == 201  # created by a post
        holding = await open_socket(room_url(server.ws_url, "r2", alice))  # by a join
        await recv_type(holding, "presence")
        assert await post_status("r3") == 201
        refused = await client.post("/api/rooms/r4/messages", json={"text": "x"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        with pytest.raises(InvalidStatus) as handshake:
            await open_socket(room_url(server.ws_url, "r5", alice))
        assert handshake.value.response.status_code == 429

        assert await post_status("r1") == 201  # rooms that exist cost nothing
        again = await open_socket(room_url(server.ws_url, "r2", alice))
        await recv_type(again, "presence")
        ws = await open_socket(room_url(server.ws_url, "r4", bob))  # bob's quota is his
        await recv_type(ws, "presence")
        for socket in (holding, again, ws):
            await socket.close()


async def test_a_post_too_long_is_not_echoed_back(client: httpx.AsyncClient, alice: Auth) -> None:
    text = "y" * 60_000
    response = await client.post("/api/rooms/lobby/messages", json={"text": text}, headers=alice)
    assert response.status_code == 422
    assert len(response.content) < 500, response.content[:500]
