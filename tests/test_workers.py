"""``roomchat serve --workers 2`` on PostgreSQL and Redis behaves as one server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from roomchat.accounts.security import create_access_token
from tests import services
from tests.conftest import PASSWORD, TEST_REGISTRATIONS_PER_ADDRESS, TEST_SECRET
from tests.helpers import free_port
from tests.waiting import eventually
from tests.wsclient import open_socket, recv, recv_messages, room_url

SOCKETS = 20
SENDERS = 5
PER_SENDER = 4
START_TIMEOUT = 60.0
ATTEMPTS = 5
CONNECTIONS_TO_REACH_BOTH = 60


class Workers:
    def __init__(self, port: int, prefix: str, log: Path) -> None:
        self.port, self.prefix, self.log = port, prefix, log
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        #: The workers' process ids, as /readyz names them.
        self.pids: set[int] = set()

    def workers_alive(self) -> int:
        """How many workers keep a heartbeat in Redis."""
        with redis.Redis.from_url(services.REDIS_URL) as client:
            return int(client.zcard(f"{self.prefix}:presence:workers"))

    def worker_connections(self) -> list[int]:
        """How many sockets each worker holds, as the workers told Redis."""
        with redis.Redis.from_url(services.REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"{self.prefix}:presence:w:*"))
            return sorted(int(client.scard(key)) for key in keys)


@pytest.fixture
def workers(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[Workers]:
    port = free_port()
    env = os.environ | {
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
        "ROOMCHAT_DATABASE_URL": postgres_url,
        "ROOMCHAT_REDIS_URL": services.REDIS_URL,
        "ROOMCHAT_REDIS_PREFIX": redis_prefix,
        "ROOMCHAT_DATA_DIR": str(tmp_path / "data"),
        "ROOMCHAT_LOG_LEVEL": "info",  # test_every_log_line_names_its_worker reads it
        "ROOMCHAT_REGISTRATIONS_PER_ADDRESS": str(TEST_REGISTRATIONS_PER_ADDRESS),
    }
    command = [sys.executable, "-m", "roomchat", "serve", "--workers", "2", "--port", str(port)]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    server = Workers(port, redis_prefix, tmp_path / "server.log")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        answered: set[int] = set()  # worker pids seen on /readyz: both accept connections
        while server.workers_alive() < 2 or len(answered) < 2:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the two workers did not start in time"
            answered |= _ready_worker(server.http_url)
            time.sleep(0.05)  # start-up polling, with a deadline
        server.pids = answered
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _ready_worker(url: str) -> set[int]:
    try:
        response = httpx.get(f"{url}/readyz", timeout=2)
    except httpx.HTTPError:
        return set()
    return {int(response.headers["x-roomchat-worker"])} if response.status_code == 200 else set()


async def test_twenty_sockets_over_two_workers_are_one_room(workers: Workers) -> None:
    names = [f"user{n:02d}" for n in range(SOCKETS)]
    async with httpx.AsyncClient(base_url=workers.http_url, timeout=30) as client:
        for name in names:
            response = await client.post(
                "/api/auth/register", json={"username": name, "password": PASSWORD}
            )
            assert response.status_code == 201, response.text
    tokens = {
        name: create_access_token(subject=name, secret_key=TEST_SECRET, minutes=10)
        for name in names
    }

    async def join(name: str) -> Any:
        # Unbounded client queues: unread join/leave frames must not hold up a close.
        ws = await open_socket(room_url(workers.ws_url, "lobby", tokens[name]), max_queue=None)
        assert (await recv(ws))["type"] == "history"
        assert (await recv(ws))["type"] == "presence"
        return ws

    # The kernel hands each connection to whichever worker accepts first; reconnect if it
    # happened to give them all to one, as the point is to span both.
    for _ in range(ATTEMPTS):
        sockets = await asyncio.gather(*(join(name) for name in names))
        spread = workers.worker_connections()
        if len(spread) == 2:
            break
        await asyncio.gather(*(ws.close() for ws in sockets))
        await eventually(lambda: not workers.worker_connections())
    assert sum(spread) == SOCKETS
    assert len(spread) == 2, f"all sockets on one worker, {ATTEMPTS} times: {spread}"

    # Presence is global: every worker answers with all twenty. Each client is one
    # connection, so one worker; /readyz names it. Go on until both have answered.
    auth = {"Authorization": f"Bearer {tokens[names[0]]}"}
    answered: set[str] = set()
    one_connection = httpx.Limits(max_connections=1)
    for _ in range(CONNECTIONS_TO_REACH_BOTH):
        async with httpx.AsyncClient(base_url=workers.http_url, limits=one_connection) as client:
            worker = (await client.get("/readyz")).headers["X-Roomchat-Worker"]
            members = await client.get("/api/rooms/lobby/members", headers=auth)
            assert members.json() == {"members": names}, worker
            rooms = await client.get("/api/rooms", headers=auth)
            assert rooms.json() == [{"name": "lobby", "members": SOCKETS}], worker
        answered.add(worker)
        if len(answered) == 2:
            break
    assert len(answered) == 2, f"only worker {answered} answered {CONNECTIONS_TO_REACH_BOTH} times"

    async def talk(ws: Any, sender: int) -> None:
        for n in range(PER_SENDER):
            await ws.send(f"from {sender}: {n}")

    await asyncio.gather(*(talk(ws, n) for n, ws in enumerate(sockets[:SENDERS])))
    total = SENDERS * PER_SENDER
    received = await asyncio.gather(*(recv_messages(ws, total) for ws in sockets))
    orders = [[message["id"] for message in messages] for messages in received]
    assert all(order == orders[0] for order in orders), "members saw different orders"
    assert orders[0] == sorted(set(orders[0]))
    texts = {message["text"] for message in received[0]}
    assert texts == {f"from {s}: {n}" for s in range(SENDERS) for n in range(PER_SENDER)}
    await asyncio.gather(*(ws.close() for ws in sockets))


def test_every_log_line_names_its_worker(workers: Workers) -> None:
    """Two workers write to one stream: each line says which (``pid=``), and uvicorn's
    start-up lines are named for what they are (``uvicorn.server``, not ``uvicorn.error``)."""
    lines = [line for line in workers.log.read_text().splitlines() if line.startswith("ts=")]
    started = [line for line in lines if "Started server process" in line]
    assert len(started) >= 2, lines
    assert all(" logger=uvicorn.server " in line for line in started), started
    assert not any("logger=uvicorn.error" in line for line in lines), lines
    pids = {int(line.split(" pid=")[1].split()[0]) for line in lines if " pid=" in line}
    assert all(" pid=" in line for line in lines), [line for line in lines if " pid=" not in line]
    assert workers.pids <= pids, (workers.pids, pids)
