"""Property-based: random frames at a live socket never crash the server, never stop it
serving others, and never get an invalid message delivered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

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


async def exchange(server: LiveServer, tokens: dict[str, str], sent: list[str | bytes]) -> None:
    fuzzer = await open_socket(room_url(server.ws_url, "fuzz", tokens["fuzzer"]))
    watcher = await open_socket(room_url(server.ws_url, "fuzz", tokens["watcher"]))
    await recv_type(watcher, "presence")
    try:
        for frame in sent:
            await fuzzer.send(frame)
        sentinel = f"sentinel {uuid4()}"
        await fuzzer.send(json.dumps({"type": "message", "text": sentinel}))
        while True:
            frame = await recv(watcher)
            if frame["type"] == "message":
                check_message(frame)
                if frame["text"] == sentinel:
                    break
    except ConnectionClosed as closed:
        raise AssertionError(f"a socket was closed: {closed}") from None
    finally:
        await fuzzer.close()
        await watcher.close()


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
def test_random_frames_never_break_the_room(
    fuzz_server: tuple[LiveServer, dict[str, str]], sent: list[str | bytes]
) -> None:
    server, tokens = fuzz_server
    asyncio.run(asyncio.wait_for(exchange(server, tokens, sent), 30))
