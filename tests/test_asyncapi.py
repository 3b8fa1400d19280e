"""``/asyncapi.json``: the WebSocket protocol as an AsyncAPI 3 document, true to the server.

The document must be valid AsyncAPI 3 (pydantic-asyncapi's models of the spec), every
reference in it must resolve, and every frame a live server sends in a session that
produces each kind of frame must validate against the document's schema for its type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from pydantic_asyncapi.v3 import AsyncAPI

from roomchat.api.asyncapi import CLIENT_FRAMES, SERVER_FRAMES, asyncapi_document
from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import join, recv, recv_type

pytestmark = pytest.mark.embedded_only  # the document and the frames are the same on both


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validator(document: dict[str, Any], model: str) -> Callable[[dict[str, Any]], list[str]]:
    """Errors of one frame against ``components.schemas[model]`` (refs resolved in place)."""
    schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
    check = jsonschema_rs.validator_for(schema)
    return lambda frame: [error.message for error in check.iter_errors(frame)]


async def test_the_document_is_asyncapi_3_and_every_reference_resolves(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document == asyncapi_document()
    AsyncAPI.model_validate(document)
    assert document["channels"]["room"]["address"] == "/ws/{room}"
    for pointer in set(references(document)):
        assert resolve(document, pointer) is not None, pointer
    operations = document["operations"]
    sent = {ref["$ref"].rsplit("/", 1)[1] for ref in operations["sendRoomEvents"]["messages"]}
    received = {
        ref["$ref"].rsplit("/", 1)[1] for ref in operations["receiveClientFrames"]["messages"]
    }
    assert (sent, received) == (set(SERVER_FRAMES), set(CLIENT_FRAMES))


async def test_every_frame_a_live_server_sends_matches_the_document(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(presence_linger_seconds=0, message_burst=3, messages_per_second=0.01)
    document = asyncapi_document()
    alice_token = await live_token(server, "alice")
    bob_token = await live_token(server, "bob")
    seen: list[dict[str, Any]] = []

    alice, history, presence = await join(server, "docs", alice_token)
    seen += [history, presence]
    sent: list[dict[str, Any]] = [
        {"type": "message", "text": "hello", "client_id": "docs-1"},
        {"type": "typing"},
    ]
    for frame in sent:
        await alice.send(json.dumps(frame))
    hello: list[dict[str, Any]] = []  # the room's message and the sender's ack, either first
    while not {"message", "ack"} <= {frame["type"] for frame in hello}:
        hello.append(await recv(alice))
    seen += hello
    bob, history, presence = await join(server, "docs", bob_token)
    seen += [history, presence]  # a history that holds a message
    seen.append(await recv_type(alice, "join"))
    await bob.send(json.dumps({"type": "typing"}))
    seen.append(await recv_type(alice, "typing"))
    await alice.send("{not json")
    seen.append(await recv_type(alice, "error"))
    for n in range(3):  # the burst of 3 holds "hello" and two of these: rate_limited
        more = {"type": "message", "text": f"more {n}"} | ({"client_id": "late"} if n == 2 else {})
        await alice.send(json.dumps(more))
        sent.append(more)
    frames = [await recv(alice) for _ in range(3)]
    seen += frames
    assert sorted(frame["type"] for frame in frames) == ["error", "message", "message"], frames
    errors = [frame for frame in frames if frame["type"] == "error"]
    assert [(e["code"], e["client_id"]) for e in errors] == [("rate_limited", "late")]
    await bob.close()
    seen.append(await recv_type(alice, "leave"))
    await alice.close()

    assert {frame["type"] for frame in seen} == set(SERVER_FRAMES)
    checks = {kind: validator(document, model.__name__) for kind, model in SERVER_FRAMES.items()}
    for frame in seen:
        assert checks[frame["type"]](frame) == [], frame
    client_checks = [validator(document, model.__name__) for model in CLIENT_FRAMES.values()]
    for frame in sent:
        assert any(check(frame) == [] for check in client_checks), frame


def test_the_schemas_refuse_what_the_server_never_sends() -> None:
    """The document is strict enough to catch drift: a message without ``ts``, or with a
    field the server does not send, fails."""
    check = validator(asyncapi_document(), SERVER_FRAMES["message"].__name__)
    good = {"type": "message", "id": 1, "room": "a", "user": "b", "text": "c", "ts": "t"}
    assert check(good) == []
    assert check({key: value for key, value in good.items() if key != "ts"}) != []
    assert check({**good, "extra": 1}) != []
    ack = validator(asyncapi_document(), SERVER_FRAMES["ack"].__name__)
    good_ack = {"type": "ack", "room": "a", "client_id": "k-1", "id": 1}
    assert ack(good_ack) == []
    assert ack({**good_ack, "client_id": " k"}) != []  # no space at either end
    assert ack({key: value for key, value in good_ack.items() if key != "client_id"}) != []
