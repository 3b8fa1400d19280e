"""For operators: /metrics (opt-in, optionally with a token), /readyz, structured logs."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.exceptions import InvalidStatus

from roomchat.ops.logs import JsonFormatter, KeyValueFormatter
from roomchat.ops.readiness import check_redis, check_store, readiness
from tests.conftest import PASSWORD, TEST_SECRET, live_token, require_service
from tests.helpers import free_port
from tests.live import LiveServer
from tests.serverprocess import ServerProcess
from tests.wsclient import open_socket, recv, recv_type, room_url

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: LiveServer, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.http_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
    assert "/metrics" not in (await client.get("/openapi.json")).text


async def test_metrics_count_what_happens(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(metrics_enabled=True, messages_per_second=0.01, message_burst=2)
    alice = await live_token(server, "alice")
    bob = await live_token(server, "bob")
    ws_alice = await open_socket(room_url(server.ws_url, "lobby", alice))
    ws_bob = await open_socket(room_url(server.ws_url, "lobby", bob))
    ws_other = await open_socket(room_url(server.ws_url, "other", bob))
    for ws in (ws_alice, ws_bob, ws_other):
        await recv_type(ws, "presence")
    samples = await scrape(server)
    assert value(samples, "roomchat_open_sockets") == 3
    assert value(samples, "roomchat_rooms") == 2
    assert value(samples, "roomchat_members") == 3  # alice and bob in lobby, bob in other

    await ws_alice.send("one")
    await ws_alice.send("two")
    await ws_alice.send("three")  # over the burst: rate limited
    await recv_type(ws_bob, "message")
    await recv_type(ws_bob, "message")
    # The refusal is immediate; the messages may come after it (through Redis).
    kinds: list[str] = []
    while kinds.count("message") < 2 or "error" not in kinds:
        frame = await recv(ws_alice)
        kinds.append(frame["type"])
        if frame["type"] == "error":
            assert frame["code"] == "rate_limited"
    headers = {"Authorization": f"Bearer {bob}"}
    url = f"{server.http_url}/api/rooms/other/messages"
    async with httpx.AsyncClient() as client:
        statuses = [
            (await client.post(url, json={"text": "hi"}, headers=headers)).status_code
            for _ in range(3)
        ]
    assert statuses == [201, 201, 429]
    for reason_url, options in [
        (room_url(server.ws_url, "lobby", "forged"), {}),
        (room_url(server.ws_url, "lobby", alice), {"origin": "https://evil.example"}),
        (room_url(server.ws_url, "bad.room", alice), {}),
    ]:
        with pytest.raises(InvalidStatus):
            await open_socket(reason_url, **options)
    for ws in (ws_alice, ws_bob, ws_other):
        await ws.close()

    samples = await scrape(server)
    assert value(samples, "roomchat_messages_received_total") == 4
    # Two messages to two sockets in lobby, two to one socket in other.
    assert value(samples, "roomchat_messages_delivered_total") == 6
    # The fan-out histogram has one sample per batch a socket's writer sent.
    assert 3 <= value(samples, "roomchat_fanout_seconds_count") <= 6
    assert value(samples, "roomchat_fanout_seconds_sum") > 0
    assert value(samples, "roomchat_rate_limited_total", via="socket") == 1
    assert value(samples, "roomchat_rate_limited_total", via="http") == 1
    for reason in ("token", "origin", "invalid"):
        assert value(samples, "roomchat_handshakes_refused_total", reason=reason) == 1
    assert value(samples, "roomchat_queue_overflows_total") == 0
    assert value(samples, "roomchat_backend_errors_total", kind="store") == 0


async def test_metrics_token_is_required_when_set(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(metrics_enabled=True, metrics_token="scrape-me-0123456789")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        for authorization in (None, "Bearer wrong", "scrape-me-0123456789", "Basic x"):
            headers = {"Authorization": authorization} if authorization else {}
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
    assert value(await scrape(server, "scrape-me-0123456789"), "roomchat_open_sockets") == 0


async def test_readyz_checks_the_store(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["store"] == "ok"  # and "redis", when configured

    async def store_down(_engine: object) -> bool:
        return False

    monkeypatch.setattr("roomchat.ops.readiness.check_store", store_down)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["store"] == "failed"


async def test_readiness_checks_fail_when_nothing_answers(tmp_path: Path) -> None:
    missing = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert not await check_store(missing)
    await missing.dispose()
    closed_port = free_port()  # a port that nothing listens on
    assert not await check_redis(f"redis://127.0.0.1:{closed_port}/0")
    working = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}")
    checks = await readiness(working, f"redis://127.0.0.1:{closed_port}/0")
    assert checks == {"store": "ok", "redis": "failed"}
    await working.dispose()


async def test_readiness_checks_a_running_redis() -> None:
    with socket.socket() as probe:
        available = probe.connect_ex(("127.0.0.1", 6379)) == 0
    require_service(available, "Redis is not running on 127.0.0.1:6379")
    assert await check_redis("redis://127.0.0.1:6379/0")


def record(
    msg: str, *args: object, name: str = "roomchat.test", **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    for key, item in extra.items():
        setattr(made, key, item)
    return made


def test_key_value_lines_are_one_line_and_keep_no_token() -> None:
    line = KeyValueFormatter().format(
        record("joined %s\nsecond line", "/ws/lobby?token=abc.def.ghi", room="lobby", code=1013)
    )
    assert "\n" not in line
    assert "abc.def.ghi" not in line
    assert " level=info logger=roomchat.test msg=" in line
    assert line.endswith(" room=lobby code=1013")
    assert "/ws/lobby?[redacted]" in line  # a socket's whole query string


def test_uvicorn_server_lines_are_named_for_what_they_are_and_may_carry_the_pid() -> None:
    started = record("Started server process [%d]", 42, name="uvicorn.error")
    line = KeyValueFormatter().format(started)
    assert " logger=uvicorn.server msg=" in line
    assert " pid=" not in line
    with_pid = KeyValueFormatter(pid=True).format(started)
    assert f" logger=uvicorn.server pid={os.getpid()} msg=" in with_pid


def test_other_libraries_warnings_are_one_redacted_line_too() -> None:
    """Under roomchat's logging config a warning from any library (here asyncio's logger)
    goes through the same redacting one-line handler, not Python's bare last resort."""
    script = (
        "import logging, logging.config\n"
        "from roomchat.ops.logs import logging_config\n"
        "logging.config.dictConfig(logging_config(log_format='keyvalue', log_level='info'))\n"
        "logging.getLogger('asyncio').warning('lost %s', '/ws/lobby?token=abc.def.ghi')\n"
        "logging.getLogger('roomchat.test').warning('once')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines  # roomchat's own line is not written twice
    assert " level=warning logger=asyncio msg=" in lines[0]
    assert "abc.def.ghi" not in done.stderr
    assert " logger=roomchat.test msg=once" in lines[1]


def test_json_lines_parse_and_keep_no_token() -> None:
    access = record(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/api/users/me?access_token=abc.def.ghi",
        "1.1",
        200,
        name="uvicorn.access",
    )
    try:
        raise RuntimeError("Bearer abc.def.ghi")
    except RuntimeError:
        access.exc_info = sys.exc_info()
    line = JsonFormatter().format(access)
    assert "abc.def.ghi" not in line
    fields = json.loads(line)
    assert fields["path"] == "/api/users/me?access_token=[redacted]"
    assert (fields["method"], fields["status"], fields["level"]) == ("GET", 200, "info")
    assert "Bearer [redacted]" in fields["exc"]


async def test_json_logs_from_a_real_server_carry_no_token(tmp_path: Path) -> None:
    process = ServerProcess(
        {
            "ROOMCHAT_SECRET_KEY": TEST_SECRET,
            "ROOMCHAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}",
            "ROOMCHAT_LOG_FORMAT": "json",
        },
        cwd=tmp_path,
    )
    try:
        process.wait_ready()
        async with httpx.AsyncClient(base_url=process.url) as client:
            body = {"username": "alice", "password": PASSWORD}
            await client.post("/api/auth/register", json=body)
            token = (await client.post("/api/auth/token", data=body)).json()["access_token"]
        async with await open_socket(f"{process.ws_url}/ws/lobby?token={token}") as ws:
            assert (await recv(ws))["type"] == "history"
        with pytest.raises(InvalidStatus):
            await open_socket(f"{process.ws_url}/ws/bad%20room?token={token}")
    finally:
        output = process.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert token not in output
    assert PASSWORD not in output
    assert any(line.get("path") == "/api/auth/token" for line in lines)
    refused = [line for line in lines if line["msg"] == "handshake refused"]
    assert refused == [refused[0] | {"status": 422, "room": "bad room"}]
    assert any("/ws/lobby?[redacted]" in line["msg"] for line in lines)
