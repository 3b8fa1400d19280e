"""The attacker (``python -m bench.attack.attacker``): issue 12's items 1, 2, 4 and 8 at once.

One account, registered over HTTP before the clock starts, and one address (``source``);
every socket below uses that account's token. Each item runs as a few workers that
repeat their attack until the deadline: when the server cuts a connection (that is what
a fixed server should do) the worker counts how and starts over. Connection errors are
expected and counted, never fatal; every wait is bounded by the deadline.

- ``abuse`` (item 1): send ``burst`` messages at once, so the server closes the socket
  for abuse (1008); then, never answering its close frame, send tiny frames as fast as the
  socket takes them until the server cuts the connection. Measured: the close codes, and
  how long after its close frame the server let go.
- ``pings`` (item 2): on a socket that never reads, send pings (125-byte payloads, each
  of which a server answers with a pong of the same size) as fast as the socket takes them.
- ``replay`` (item 4): join the big room with ``since=0`` on a socket that never reads,
  hold it ``hold_s``, reset it and start over.
- ``hash`` (item 8): ``register_per_s`` registrations and ``login_per_s`` logins of the
  attacker's own name (wrong password by default) a second, an open loop with at most
  ``in_flight`` requests waiting: each one the server answers costs it an argon2 hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from bench.attack import child, wire
from bench.stats import latency_summary_ms

TCP_ESTABLISHED = 1
RECEIVE_BUFFER_BYTES = 4096
ERROR_PAUSE_S = 0.1  # after a refused or failed connect, so a refusal is no busy loop


class Item:
    """What one attack item did: counters, plus a few durations."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        self.latencies_ns: list[int] = []

    def took(self, name: str, seconds: float) -> None:
        self.durations.setdefault(name, []).append(seconds)

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = dict(sorted(self.counts.items()))
        for name, values in self.durations.items():
            figures[name] = {
                "n": len(values),
                "median": statistics.median(values),
                "max": max(values),
                "values": [round(value, 3) for value in values],
            }
        if self.latencies_ns:
            figures["latency"] = latency_summary_ms(self.latencies_ns)
        return figures


class Attacker:
    def __init__(self, spec: dict[str, Any], token: str, deadline: float) -> None:
        self.spec = spec
        self.port: int = spec["port"]
        self.source: str = spec["source"]
        self.timeout: float = spec["timeout_s"]
        self.token = quote(token)
        self.deadline = deadline
        self.items = {name: Item() for name in spec["items"]}

    def path(self, room: str, query: str = "") -> str:
        return f"/ws/{room}?token={self.token}{query}"

    async def repeat(self, name: str, attack: Callable[[Item], Awaitable[None]]) -> None:
        """Run one worker's attack again and again until the deadline (cancels it)."""
        item = self.items[name]
        while time.monotonic() < self.deadline:
            try:
                await attack(item)
            except wire.RefusedError as refused:
                item.counts[f"handshake refused {refused.status}"] += 1
                await asyncio.sleep(ERROR_PAUSE_S)
            except (OSError, TimeoutError) as exc:
                item.counts[f"connection error {type(exc).__name__}"] += 1
                await asyncio.sleep(ERROR_PAUSE_S)

    async def abuse(self, item: Item) -> None:
        params = self.spec["abuse"]
        loop = asyncio.get_running_loop()
        sock, rest = await wire.ws_connect(
            self.port, self.path(params["room"]), source=self.source, timeout=self.timeout
        )
        item.counts["sockets opened"] += 1
        opened = time.monotonic()
        close_seen = asyncio.Event()
        marks: dict[str, float] = {}
        reader = asyncio.create_task(self._read_until_cut(sock, rest, item, close_seen, marks))
        spam = b"".join(wire.client_frame(wire.TEXT, f"spam {i}".encode()) for i in range(100))
        spam *= max(1, params["burst"] // 100)
        spam_frames = 100 * max(1, params["burst"] // 100)
        tiny = wire.client_frame(wire.TEXT, b"x") * params["batch"]
        try:
            while not reader.done():
                if not close_seen.is_set():
                    await loop.sock_sendall(sock, spam)
                    item.counts["messages sent before the close"] += spam_frames
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(close_seen.wait(), 1.0)
                else:
                    await loop.sock_sendall(sock, tiny)
                    item.counts["tiny frames sent after the close"] += params["batch"]
        except OSError as exc:
            item.counts[f"send ended: {type(exc).__name__}"] += 1
            marks.setdefault("cut", time.monotonic())
        finally:
            reader.cancel()
            wire.reset(sock)
        if "close" in marks and "cut" in marks:
            item.took("cut after close frame (s)", marks["cut"] - marks["close"])
            item.took("close frame after connect (s)", marks["close"] - opened)

    async def _read_until_cut(
        self,
        sock: socket.socket,
        data: bytes,
        item: Item,
        close_seen: asyncio.Event,
        marks: dict[str, float],
    ) -> None:
        """Read (and discard) what the server sends; note its close frame and the cut."""
        loop = asyncio.get_running_loop()
        frames = wire.FrameReader()
        try:
            while True:
                for opcode, payload in frames.feed(data):
                    if opcode == wire.CLOSE and not close_seen.is_set():
                        item.counts[f"close {wire.close_code(payload)}"] += 1
                        marks["close"] = time.monotonic()
                        close_seen.set()
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    item.counts["cut: eof"] += 1
                    break
        except OSError as exc:
            item.counts[f"cut: {type(exc).__name__}"] += 1
        marks.setdefault("cut", time.monotonic())

    async def pings(self, item: Item) -> None:
        params = self.spec["pings"]
        sock, _ = await wire.ws_connect(
            self.port,
            self.path(params["room"]),
            source=self.source,
            timeout=self.timeout,
            receive_buffer=RECEIVE_BUFFER_BYTES,
        )
        item.counts["sockets opened"] += 1
        flood = wire.client_frame(wire.PING, b"p" * params["payload"]) * params["batch"]
        opened = time.monotonic()
        try:
            while True:
                await asyncio.get_running_loop().sock_sendall(sock, flood)
                item.counts["pings sent"] += params["batch"]
        except OSError as exc:
            item.counts[f"ended: {type(exc).__name__}"] += 1
            item.took("socket lasted (s)", time.monotonic() - opened)
        finally:
            wire.reset(sock)

    async def replay(self, item: Item) -> None:
        params = self.spec["replay"]
        sock, _ = await wire.ws_connect(
            self.port,
            self.path(params["room"], "&since=0"),
            source=self.source,
            timeout=self.timeout,
            receive_buffer=RECEIVE_BUFFER_BYTES,
        )
        item.counts["replays asked"] += 1
        opened = time.monotonic()
        try:
            until = min(self.deadline, opened + params["hold_s"])
            while time.monotonic() < until:
                await asyncio.sleep(min(0.5, max(0.0, until - time.monotonic())))
                state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                if state != TCP_ESTABLISHED:
                    item.counts["ended by the server"] += 1
                    item.took("server let go after (s)", time.monotonic() - opened)
                    return
            item.counts["held to the end, then reset"] += 1
        finally:
            wire.reset(sock)

    async def hash_flood(self) -> None:
        """Registrations and logins at a fixed rate each, at most ``in_flight`` waiting."""
        params = self.spec["hash"]
        item = self.items["hash"]
        waiting: set[asyncio.Task[None]] = set()
        wrong = params["login_password"] == "wrong"  # noqa: S105 (a mode, not a password)
        password = self.spec["password"] + ("-wrong" if wrong else "")
        login = urlencode({"username": self.spec["username"], "password": password}).encode()
        rates = {"register": params["register_per_s"], "login": params["login_per_s"]}
        next_at = {kind: time.monotonic() for kind, rate in rates.items() if rate > 0}
        serial = 0

        async def request(kind: str, body: bytes, content_type: str, path: str) -> None:
            begun = time.monotonic_ns()
            try:
                answer = await wire.http(
                    self.port,
                    "POST",
                    path,
                    source=self.source,
                    timeout=self.timeout,
                    body=body,
                    content_type=content_type,
                )
                item.counts[f"{kind} {answer.status}"] += 1
            except TimeoutError:
                item.counts[f"{kind} timeout"] += 1
            except OSError as exc:
                item.counts[f"{kind} {type(exc).__name__}"] += 1
            item.latencies_ns.append(time.monotonic_ns() - begun)

        try:
            while next_at:
                kind = min(next_at, key=next_at.__getitem__)
                await asyncio.sleep(max(0.0, next_at[kind] - time.monotonic()))
                next_at[kind] += 1.0 / rates[kind]
                if time.monotonic() >= self.deadline:
                    return
                if len(waiting) >= params["in_flight"]:
                    item.counts[f"{kind} not sent ({params['in_flight']} waiting)"] += 1
                    continue
                if kind == "register":
                    serial += 1
                    name = f"atk{os.getpid() % 100000}n{serial}"
                    body = json.dumps({"username": name, "password": f"attacker pw {serial}"})
                    args = (body.encode(), "application/json", "/api/auth/register")
                else:
                    args = (login, "application/x-www-form-urlencoded", "/api/auth/token")
                task = asyncio.create_task(request(kind, *args))
                waiting.add(task)
                task.add_done_callback(waiting.discard)
        finally:
            item.counts["requests still waiting at the deadline"] += len(waiting)
            for task in list(waiting):
                task.cancel()

    def workers(self) -> list[Awaitable[None]]:
        jobs: list[Awaitable[None]] = []
        for name, attack in (("abuse", self.abuse), ("pings", self.pings), ("replay", self.replay)):
            if name in self.items:
                jobs += [self.repeat(name, attack) for _ in range(self.spec[name]["sockets"])]
        if "hash" in self.items:
            jobs.append(self.hash_flood())
        return jobs


async def sign_up(spec: dict[str, Any]) -> str:
    """Register the attacker's one account and log in: its token."""
    port, source, timeout = spec["port"], spec["source"], spec["timeout_s"]
    body = json.dumps({"username": spec["username"], "password": spec["password"]}).encode()
    answer = await wire.http(
        port,
        "POST",
        "/api/auth/register",
        source=source,
        timeout=timeout,
        body=body,
        content_type="application/json",
    )
    if answer.status not in (201, 409):
        raise RuntimeError(f"attacker registration: HTTP {answer.status}")
    form = urlencode({"username": spec["username"], "password": spec["password"]}).encode()
    answer = await wire.http(
        port,
        "POST",
        "/api/auth/token",
        source=source,
        timeout=timeout,
        body=form,
        content_type="application/x-www-form-urlencoded",
    )
    if answer.status != 200:
        raise RuntimeError(f"attacker login: HTTP {answer.status}")
    return str(json.loads(answer.body)["access_token"])


async def run(
    spec: dict[str, Any], ready: Callable[[], Awaitable[float]], stop: asyncio.Event
) -> dict[str, Any]:
    os.nice(spec.get("nice", 0))  # the probe shares this core: let it run first
    token = await sign_up(spec)
    start = await ready()
    attacker = Attacker(spec, token, start + spec["seconds"])
    tasks = [asyncio.ensure_future(job) for job in attacker.workers()]
    await child.until(attacker.deadline, stop)
    ended_at = time.monotonic()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [
        repr(r)
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    return {
        "ran_s": ended_at - start,
        "stopped_early": stop.is_set(),
        "worker_failures": failures,
        **{name: item.figures() for name, item in attacker.items.items()},
    }


if __name__ == "__main__":
    child.main(run)
