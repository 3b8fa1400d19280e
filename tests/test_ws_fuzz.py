"""Property-based: random frames at a live socket never crash the server, never stop it
serving others, and never get an invalid message delivered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from roomchat.api.schemas import BLANK_CHARACTERS
from tests.conftest import live_token
from tests.live import LiveServer
from tests.wsclient import open_socket, recv, recv_type, room_url

MAX_CHARS = 200
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=MAX_CHARS + 20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
json_frames = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["message", "typing"]), "text": json_values}),
    st.dictionaries(st.sampled_from(["type", "text", "room", "user", "id"]) | text, json_values),
    json_values,
).map(json.dumps)
frames = st.one_of(
    text,
    json_frames,
    st.builds(lambda body: "{" + body, text),  # starts like JSON, is not
    st.just("[" * 5000 + "]" * 5000),  # deeply nested
    st.binary(max_size=64),
)


def check_message(frame: dict[str, Any]) -> None:
    assert set(frame) == {"type", "id", "room", "user", "text", "ts"}
    assert isinstance(frame["id"], int)
    assert frame["room"] == "fuzz"
    assert frame["user"] == "fuzzer"
    assert isinstance(frame["text"], str)
    assert frame["text"].strip()
    assert len(frame["text"]) <= MAX_CHARS


def expected(frame: str | bytes) -> tuple[str, str] | None:
    """What API.md says a frame gets: ``("message", text)``, ``("error", code)``, or None
    (typing: announced to the room, nothing to the sender). Written from the contract, not
    from the server's parser."""
    if isinstance(frame, bytes):
        return ("error", "binary_frame")
    if not frame.startswith("{"):
        return text_outcome(frame)
    try:
        body = orjson.loads(frame)  # the JSON the server reads: no NaN, 64-bit integers
    except orjson.JSONDecodeError:
        return ("error", "bad_json")
    if not isinstance(body, dict):
        return ("error", "bad_json")
    fields = {"message": {"type", "text"}, "typing": {"type"}}
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in fields:
        return ("error", "unknown_type")
    if set(body) - fields[kind]:
        return ("error", "unknown_field")
    if kind == "typing":
        return None
    if not isinstance(body.get("text"), str):
        return ("error", "bad_text")
    return text_outcome(body["text"])


def text_outcome(text: str) -> tuple[str, str]:
    if not text.strip(BLANK_CHARACTERS):
        return ("error", "empty_text")
    if "\x00" in text:
        return ("error", "bad_text")
    if len(text) > MAX_CHARS:
        return ("error", "text_too_long")
    return ("message", text)


async def exchange(server: LiveServer, tokens: dict[str, str], sent: list[str | bytes]) -> None:
    """The watcher gets exactly the valid messages, in order; the fuzzer exactly the errors
    its frames earn, in order (besides its own messages, which come once stored)."""
    outcomes = [outcome for outcome in map(expected, sent) if outcome is not None]
    texts = [value for kind, value in outcomes if kind == "message"]
    codes = [value for kind, value in outcomes if kind == "error"]
    fuzzer = await open_socket(room_url(server.ws_url, "fuzz", tokens["fuzzer"]))
    watcher = await open_socket(room_url(server.ws_url, "fuzz", tokens["watcher"]))
    await recv_type(watcher, "presence")
    sentinel = f"sentinel {uuid4()}"
    try:
        for frame in sent:
            await fuzzer.send(frame)
        await fuzzer.send(json.dumps({"type": "message", "text": sentinel}))
        assert await messages_until(watcher, sentinel) == [*texts, sentinel]
        errors: list[str] = []
        while True:  # the sentinel is stored after every frame before it was handled
            frame = await recv(fuzzer)
            if frame["type"] == "error":
                errors.append(frame["code"])
            elif frame["type"] == "message" and frame["text"] == sentinel:
                break
        assert errors == codes
    except ConnectionClosed as closed:
        raise AssertionError(f"a socket was closed: {closed}") from None
    finally:
        await fuzzer.close()
        await watcher.close()


async def messages_until(ws: Any, sentinel: str) -> list[str]:
    received: list[str] = []
    while not received or received[-1] != sentinel:
        frame = await recv(ws)
        if frame["type"] == "message":
            check_message(frame)
            received.append(frame["text"])
    return received


@pytest.fixture
def fuzz_server(live_server: Callable[..., LiveServer]) -> tuple[LiveServer, dict[str, str]]:
    server = live_server(
        max_message_chars=MAX_CHARS, messages_per_second=10_000, message_burst=10_000
    )
    tokens = {name: asyncio.run(live_token(server, name)) for name in ("fuzzer", "watcher")}
    return server, tokens


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=st.lists(frames, max_size=8))
@example(
    sent=[
        "x" * MAX_CHARS,
        "y" * (MAX_CHARS + 1),
        json.dumps({"type": "message", "text": "z" * (MAX_CHARS + 1)}),
    ]
)
@example(sent=["   ", "\ufeff", "\x1c", "a\x00b", b"\x00", "{", '{"type": "message"}'])
@example(
    sent=['{"type": "typing", "x": 1}', '{"type": "message", "text": 5}', '{"type": 1}', "[1]"]
)
def test_random_frames_never_break_the_room(
    fuzz_server: tuple[LiveServer, dict[str, str]], sent: list[str | bytes]
) -> None:
    server, tokens = fuzz_server
    asyncio.run(asyncio.wait_for(exchange(server, tokens, sent), 30))
