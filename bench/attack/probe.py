"""The probe: what a bystander sees while the attack runs (``python -m bench.attack.probe``).

Three probe users, logged in before the clock starts, sit in one room on sockets of
their own and take turns sending a message every ``chat_interval_s`` (each user stays
under the default 5 messages/s); each message's round trip is the time from its send to
its own echo from the room. Meanwhile ``GET /healthz`` goes out every
``healthz_interval_s`` on a fresh connection (an open loop, at most ``max_in_flight``
at once), and the victim logs in every ``login_interval_s`` (one login at a time, as a
person would). Everything comes from ``source``, an address of its own.

Timed-out requests count in the latencies at their timeout (a stall must not vanish
from the p99 by timing out) and among the failures; a message without its echo within
``timeout_s`` after the run is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from bench.attack import child, wire
from bench.stats import latency_summary_ms, percentile

CHAT_ROOM = "lobby"
INITIAL_FRAMES = 2  # history, then presence

now_ns = time.monotonic_ns


class Chatter:
    """One probe user's socket: sends stamped texts, reads everything, answers the protocol."""

    def __init__(self, index: int, spec: dict[str, Any], token: str) -> None:
        self.index = index
        self._port, self._source = spec["port"], spec["source"]
        self._timeout: float = spec["timeout_s"]
        self._path = f"/ws/{CHAT_ROOM}?token={quote(token)}"
        self.sock: socket.socket | None = None
        self.on_echo: Callable[[int, int, int], None] = lambda _u, _s, _t: None
        self.errors: Counter[str] = Counter()  # on this side: sends, reconnects
        self.refusals: Counter[str] = Counter()  # error frames from the server, by code
        self.closes: Counter[str] = Counter()  # close codes, or how the socket ended
        self.reconnects = 0
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._marker = f"~{index}:".encode()

    async def connect(self) -> None:
        sock, rest = await wire.ws_connect(
            self._port, self._path, source=self._source, timeout=self._timeout
        )
        ready = asyncio.get_running_loop().create_future()
        self.sock = sock
        self._reader = asyncio.create_task(self._read(sock, rest, ready))
        try:
            await asyncio.wait_for(ready, self._timeout)
        except BaseException:
            self.drop()
            raise

    def reconnect_soon(self) -> None:
        """Reconnect in the background (once at a time); the run goes on meanwhile."""
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        self.reconnects += 1
        try:
            await self.connect()
        except (OSError, TimeoutError) as exc:
            self.errors[f"reconnect: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)

    async def send(self, text: bytes) -> bool:
        sock = self.sock
        if sock is None:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.get_running_loop().sock_sendall(
                    sock, wire.client_frame(wire.TEXT, text)
                )
        except (OSError, TimeoutError) as exc:
            self.errors[f"send: {type(exc).__name__}"] += 1
            self.drop()
            return False
        return True

    async def close(self) -> None:
        """End the run's socket politely (a close frame, code 1000), and any reconnect."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self.sock is not None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await asyncio.get_running_loop().sock_sendall(
                        self.sock, wire.client_frame(wire.CLOSE, b"\x03\xe8")
                    )
        self.drop()

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    async def _read(self, sock: socket.socket, rest: bytes, ready: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        frames = wire.FrameReader()
        initial = INITIAL_FRAMES
        data = rest
        try:
            while True:
                for opcode, payload in frames.feed(data):
                    received = now_ns()
                    if opcode == wire.TEXT:
                        if initial:
                            initial -= 1
                            if not initial:
                                ready.set_result(None)
                            continue
                        self._text(payload, received)
                    elif opcode == wire.PING:
                        await loop.sock_sendall(sock, wire.client_frame(wire.PONG, payload))
                    elif opcode == wire.CLOSE:
                        self.closes[str(wire.close_code(payload))] += 1
                        await loop.sock_sendall(sock, wire.client_frame(wire.CLOSE, payload[:2]))
                        return
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    self.closes["eof"] += 1
                    return
        except OSError as exc:
            self.closes[type(exc).__name__] += 1
        finally:
            if not ready.done():
                ready.set_exception(ConnectionError("closed before history and presence"))
            if self.sock is sock:
                self.sock = None
            sock.close()

    def _text(self, payload: bytes, received: int) -> None:
        start = payload.find(self._marker)
        if start >= 0:
            end = payload.find(b"~", start + 1)
            _user, seq, sent = payload[start + 1 : end].split(b":")
            self.on_echo(self.index, int(seq), received - int(sent))
        elif b'"type":"error"' in payload:
            try:
                self.refusals[str(json.loads(payload).get("code"))] += 1
            except ValueError:
                self.refusals["unparsable error"] += 1


class Requests:
    """Latencies and outcomes of one kind of HTTP probe."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.timeline: list[tuple[float, float]] = []  # (start since t0 in s, latency ms)
        self.statuses: Counter[str] = Counter()
        self.skipped = 0

    async def measure(self, t0: float, call: Awaitable[wire.Response], timeout: float) -> None:
        begun, begun_s = now_ns(), time.monotonic() - t0
        try:
            response = await call
            self.statuses[str(response.status)] += 1
        except TimeoutError:
            self.statuses["timeout"] += 1
        except OSError as exc:
            self.statuses[type(exc).__name__] += 1
        elapsed = now_ns() - begun
        self.latencies_ns.append(min(elapsed, int(timeout * 1e9)))
        self.timeline.append((begun_s, elapsed / 1e6))

    def figures(self, ok: str) -> dict[str, Any]:
        done = sum(self.statuses.values())
        return {
            "requests": done,
            "ok": self.statuses.get(ok, 0),
            "failed": done - self.statuses.get(ok, 0),
            "skipped": self.skipped,
            "statuses": dict(self.statuses),
            **latency_summary_ms(self.latencies_ns),
            "worst_per_second_ms": per_second_max(self.timeline),
        }


def per_second_max(samples: list[tuple[float, float]]) -> list[float | None]:
    """The worst latency of what started in each second of the run."""
    if not samples:
        return []
    worst: list[float | None] = [None] * (int(max(t for t, _ in samples)) + 1)
    for t, value in samples:
        i = max(0, int(t))
        current = worst[i]
        worst[i] = round(value if current is None else max(current, value), 2)
    return worst


async def login(spec: dict[str, Any], username: str) -> wire.Response:
    form = urlencode({"username": username, "password": spec["password"]}).encode()
    return await wire.http(
        spec["port"],
        "POST",
        "/api/auth/token",
        source=spec["source"],
        timeout=spec["timeout_s"],
        body=form,
        content_type="application/x-www-form-urlencoded",
    )


async def run(
    spec: dict[str, Any], ready: Callable[[], Awaitable[float]], stop: asyncio.Event
) -> dict[str, Any]:
    port, source, timeout = spec["port"], spec["source"], spec["timeout_s"]
    chatters = []
    for index, username in enumerate(spec["users"]):
        answer = await login(spec, username)
        if answer.status != 200:
            raise RuntimeError(f"probe login of {username} failed: HTTP {answer.status}")
        chatters.append(Chatter(index, spec, json.loads(answer.body)["access_token"]))
    for chatter in chatters:
        await chatter.connect()

    pending: dict[tuple[int, int], float] = {}  # (user, seq) -> send time since t0 (s)
    rtts: list[int] = []
    rtt_timeline: list[tuple[float, float]] = []

    def on_echo(user: int, seq: int, rtt: int) -> None:
        sent_at = pending.pop((user, seq), None)
        if sent_at is not None:
            rtts.append(rtt)
            rtt_timeline.append((sent_at, rtt / 1e6))

    for chatter in chatters:
        chatter.on_echo = on_echo
    healthz, logins = Requests(), Requests()
    lateness: list[float] = []
    not_sent = 0
    in_flight: set[asyncio.Task[None]] = set()

    start = await ready()
    deadline = start + spec["seconds"]

    async def chat() -> None:
        nonlocal not_sent
        interval = spec["chat_interval_s"]
        for seq in range(int(spec["seconds"] / interval)):
            due = start + seq * interval
            await child.until(due, stop)
            if stop.is_set():
                return
            lateness.append(time.monotonic() - due)
            chatter = chatters[seq % len(chatters)]
            if chatter.sock is None:
                not_sent += 1
                chatter.reconnect_soon()
                continue
            pending[(chatter.index, seq)] = time.monotonic() - start
            text = f"~{chatter.index}:{seq}:{now_ns()}~ probe".encode()
            if not await chatter.send(text):
                pending.pop((chatter.index, seq), None)
                not_sent += 1

    async def poll_healthz() -> None:
        interval, limit = spec["healthz_interval_s"], spec["max_in_flight"]
        for tick in range(int(spec["seconds"] / interval)):
            await child.until(start + tick * interval, stop)
            if stop.is_set():
                return
            if len(in_flight) >= limit:
                healthz.skipped += 1
                continue
            call = wire.http(port, "GET", "/healthz", source=source, timeout=timeout)
            task = asyncio.create_task(healthz.measure(start, call, timeout))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def victim_logins() -> None:
        interval = spec["login_interval_s"]
        while time.monotonic() < deadline and not stop.is_set():
            begun = time.monotonic()
            await logins.measure(start, login(spec, spec["victim"]), timeout)
            await child.until(max(begun + interval, time.monotonic()), stop)

    await asyncio.gather(chat(), poll_healthz(), victim_logins())
    # Let the last echoes and requests come back (each is bounded by timeout_s).
    settle_until = time.monotonic() + timeout
    while (pending or in_flight) and time.monotonic() < settle_until:
        await asyncio.sleep(0.05)
    for task in list(in_flight):
        task.cancel()
    for chatter in chatters:
        await chatter.close()

    errors: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    closes: Counter[str] = Counter()
    for chatter in chatters:
        errors.update(chatter.errors)
        refusals.update(chatter.refusals)
        closes.update(chatter.closes)
    late_ms = [value * 1e3 for value in lateness]
    return {
        "chat": {
            "sent": len(rtts) + len(pending),
            "echoed": len(rtts),
            "lost": len(pending) + not_sent,
            "not_sent": not_sent,
            **latency_summary_ms(rtts),
            "worst_per_second_ms": per_second_max(rtt_timeline),
            "errors": dict(errors),
            "refusals": dict(refusals),
            "error_frames": sum(refusals.values()),
            "closes": dict(closes),
            "closed_by_server": sum(n for code, n in closes.items() if code.isdigit()),
            "reconnects": sum(c.reconnects for c in chatters),
        },
        "healthz": healthz.figures("200"),
        "login": logins.figures("200"),
        "probe_late_p99_ms": percentile(late_ms, 0.99),
        "probe_late_max_ms": max(late_ms, default=None),
    }


if __name__ == "__main__":
    child.main(run)
