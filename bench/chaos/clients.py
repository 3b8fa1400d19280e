"""The people in the room: senders, watchers, a user who leaves and one who joins, the prober.

Senders use ``roomchat.client`` (a reconnecting ``Room`` and ``Client.post``) and tag
every text; watchers are plain room sockets that record each message event as it came
(the client would hide a repeat or a reordering) and keep the member list as a client
does. All of them run in one event loop, timed on one monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.chaos.counting import Delivery, ProbeRound, Send, WatcherLog, tag_of, tag_text
from bench.chaos.deployment import PASSWORD
from roomchat.client import (
    Ack,
    Backoff,
    Client,
    Disconnected,
    ErrorEvent,
    HTTPError,
    Message,
    Room,
    RoomchatError,
)

log = logging.getLogger(__name__)

PACE_S = 0.4  # 2.5 messages/s per sender, under ROOMCHAT_MESSAGES_PER_SECOND=5
HTTP_TIMEOUT_S = 5.0
#: Short waits between reconnects: a scenario lasts seconds, not minutes.
BACKOFF = Backoff(initial=0.25, maximum=2.0, attempts=None)


class Clock:
    """Seconds since the scenario began."""

    def __init__(self) -> None:
        self.zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.zero


class Pacer:
    """Ticks every ``PACE_S``; a tick missed while a call hung is skipped, never caught up."""

    def __init__(self) -> None:
        self.next = time.monotonic()

    async def tick(self) -> None:
        now = time.monotonic()
        self.next = max(self.next + PACE_S, now)
        await asyncio.sleep(self.next - now)


class Sender:
    """Posts tagged messages at a steady pace while ``sending`` is set."""

    via = ""

    def __init__(self, name: str, url: str, server: str, room: str, clock: Clock) -> None:
        self.name, self.url, self.server, self.room, self.clock = name, url, server, room, clock
        self.sends: dict[str, Send] = {}
        self.sequence = 0
        self.sending = asyncio.Event()
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.events: Counter[str] = Counter()  # errors, closes, give-ups: for the JSON
        self.error_frames = 0  # a socket's refusals (they name no message)

    async def run(self) -> None:
        raise NotImplementedError

    def client(self) -> Client:
        return Client(
            self.url, username=self.name, password=PASSWORD, timeout=HTTP_TIMEOUT_S, backoff=BACKOFF
        )

    def new_send(self) -> Send:
        self.sequence += 1
        tag = f"{self.name}#{self.sequence}"
        send = Send(tag, self.name, self.via, self.server, first_at=self.clock.now())
        self.sends[tag] = send
        return send

    def acknowledge(self, tag: str, message_id: int | None) -> None:
        send = self.sends.get(tag)
        if send is not None and send.acked_at is None:
            send.acked_at, send.ack_id = self.clock.now(), message_id

    def summary(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "server": self.server,
            "sent": len(self.sends),
            "attempts": sum(s.attempts for s in self.sends.values()),
            "acknowledged": sum(s.acknowledged for s in self.sends.values()),
            "events": dict(self.events),
            "error_frames": self.error_frames,
        }


class SocketSender(Sender):
    """``Room.send`` over a room socket; acknowledged when its own message comes back."""

    via = "socket"

    async def run(self) -> None:
        async with self.client() as client:
            since: int | None = None
            while not self.done.is_set():
                room = client.room(self.room, since=since)
                try:
                    async with room:
                        self.ready.set()
                        await self._in_room(room)
                except RoomchatError as exc:  # the room gave up: join again, as an app would
                    self.events[f"gave up: {type(exc).__name__} {getattr(exc, 'code', '')}"] += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.done.wait(), 1.0)
                since = room.last_id  # what it had: the new room resumes after it

    async def _in_room(self, room: Room) -> None:
        reading = asyncio.create_task(self._read(room))
        sending = asyncio.create_task(self._send(room))
        ending = asyncio.create_task(self.done.wait())
        try:
            await asyncio.wait({reading, ending}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                reading.result()  # the room ended: raises why
        finally:
            sending.cancel()
            ending.cancel()
            await room.close()  # the iteration then ends by itself, leaving nothing pending
            with contextlib.suppress(TimeoutError):
                await asyncio.wait({reading}, timeout=1.0)
            reading.cancel()
            await asyncio.gather(reading, sending, ending, return_exceptions=True)

    async def _send(self, room: Room) -> None:
        await self.sending.wait()
        pacer = Pacer()
        while self.sending.is_set():
            send = self.new_send()
            send.attempts += 1
            await room.send(tag_text(send.tag), client_id=send.tag)  # sent once, acked
            await pacer.tick()

    async def _read(self, room: Room) -> None:
        async for event in room:
            if isinstance(event, Message):
                if (tag := tag_of(event.text)) is not None:
                    self.acknowledge(tag, event.id)
            elif isinstance(event, ErrorEvent):
                self.events[f"error {event.code}"] += 1
                self.error_frames += 1
            elif isinstance(event, Disconnected):
                self.events[f"closed {event.code}"] += 1
            elif isinstance(event, Ack):
                self.acknowledge(event.client_id, event.id)


class HTTPSender(Sender):
    """``Client.post``; acknowledged by its 201. A post that failed in a way worth trying
    again (a timeout, a 5xx, a 429) is posted again, same tag, at the next tick."""

    via = "http"

    async def run(self) -> None:
        async with self.client() as client:
            self.ready.set()
            await self.sending.wait()
            pacer, retry = Pacer(), None
            while self.sending.is_set():
                send = retry or self.new_send()
                retry = send if not await self._post(client, send) else None
                await pacer.tick()

    async def _post(self, client: Client, send: Send) -> bool:
        """Post once; True when that settled it (stored, or refused for good)."""
        send.attempts += 1
        try:
            message = await client.post(self.room, tag_text(send.tag), idempotency_key=send.tag)
        except HTTPError as exc:
            send.outcomes.append(f"HTTP {exc.status_code}")
            self.events[f"HTTP {exc.status_code}"] += 1
            return not (exc.status_code >= 500 or exc.status_code in (408, 429))
        except RoomchatError as exc:  # not reached, or (once the client tells) outcome unknown
            cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
            send.outcomes.append(cause)
            self.events[cause] += 1
            return False
        send.outcomes.append("201")
        self.acknowledge(send.tag, message.id)
        return True


class Watcher:
    """A plain room socket on one server: every message event as it came, and members."""

    def __init__(self, name: str, url: str, server: str, room: str, clock: Clock) -> None:
        self.name, self.url, self.server, self.room, self.clock = name, url, server, room, clock
        self.log = WatcherLog(name, server)
        self.members: set[str] = set()
        self.last_id: int | None = None
        self.local_port: int | None = None
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.connects = 0
        self.events: Counter[str] = Counter()
        self.seen: dict[str, float] = {}  # tag -> first arrival, for the prober

    async def run(self) -> None:
        async with Client(
            self.url, username=self.name, password=PASSWORD, timeout=HTTP_TIMEOUT_S
        ) as client:
            failures = 0
            while not self.done.is_set():
                try:
                    await self._follow(client)
                    failures = 0
                except (OSError, TimeoutError, InvalidHandshake, RoomchatError) as exc:
                    # Never the exception's text: a handshake error may quote the URL,
                    # and the URL carries the token.
                    status = exc.response.status_code if isinstance(exc, InvalidStatus) else ""
                    self.events[f"connect failed {type(exc).__name__} {status}".strip()] += 1
                    failures += 1
                if not self.done.is_set():
                    with contextlib.suppress(TimeoutError):
                        delay = BACKOFF.delay(max(0, failures - 1)) if failures else 0.05
                        await asyncio.wait_for(self.done.wait(), delay)

    async def _follow(self, client: Client) -> None:
        query = {"token": await client.fresh_token()}
        if self.last_id is not None:
            query["since"] = str(self.last_id)
        url = f"{client.ws_url}/ws/{quote(self.room, safe='')}?{urlencode(query)}"
        async with connect(url, open_timeout=HTTP_TIMEOUT_S, max_size=None) as ws:
            self.connects += 1
            self.local_port = ws.local_address[1]
            ending = asyncio.create_task(self.done.wait())
            reading = asyncio.create_task(self._read(ws, client))
            try:
                await asyncio.wait({ending, reading}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ending.cancel()
                reading.cancel()
                results = await asyncio.gather(reading, return_exceptions=True)
            if isinstance(results[0], RoomchatError):
                raise results[0]
        if ws.close_code is not None and not self.done.is_set():
            self.events[f"closed {ws.close_code}"] += 1

    async def _read(self, ws: ClientConnection, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "history":
                    for message in frame["messages"]:
                        self._deliver(message)
                    latest = int(frame.get("latest") or 0)
                    if frame.get("more"):  # the rest of what was missed, over HTTP
                        after = self.last_id or 0
                        async for message in client.iter_messages(self.room, after=after):
                            if message.id > latest:
                                break
                            self._deliver({"id": message.id, "text": message.text})
                elif kind == "message":
                    self._deliver(frame)
                elif kind == "presence":
                    self.members = set(frame["members"])
                    self.ready.set()
                elif kind == "join":
                    self.members.add(frame["user"])
                elif kind == "leave":
                    self.members.discard(frame["user"])
                elif kind == "error":
                    self.events[f"error {frame.get('code')}"] += 1
                self.log.members = frozenset(self.members)

    def _deliver(self, message: dict[str, Any]) -> None:
        at = self.clock.now()
        message_id, text = int(message["id"]), str(message["text"])
        self.log.deliveries.append(Delivery(message_id, text, at))
        self.last_id = message_id if self.last_id is None else max(self.last_id, message_id)
        if (tag := tag_of(text)) is not None:
            self.seen.setdefault(tag, at)

    def summary(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "connects": self.connects,
            "messages": len(self.log.deliveries),
            "events": dict(self.events),
        }


class Churner:
    """A user in the room until the fault's middle who leaves then (``joins=False``), or
    one who comes in then and stays (``joins=True``): a leave and a join the other
    servers can only learn of during the fault, or after it."""

    def __init__(self, name: str, url: str, room: str, *, joins: bool) -> None:
        self.name, self.url, self.room, self.joins = name, url, room, joins
        self.ready = asyncio.Event()  # in the room (a leaver) or waiting (a joiner)
        self.moved = asyncio.Event()  # the fault's middle: leave, or join
        self.settled = asyncio.Event()  # left, or in the room
        self.done = asyncio.Event()
        self.events: Counter[str] = Counter()

    async def run(self) -> None:
        async with Client(
            self.url, username=self.name, password=PASSWORD, timeout=HTTP_TIMEOUT_S
        ) as client:
            if self.joins:
                self.ready.set()
                await self.moved.wait()
            while not self.done.is_set() and (self.joins or not self.moved.is_set()):
                await self._visit(client, hold=self.done.wait if self.joins else self.moved.wait)
                with contextlib.suppress(TimeoutError):  # dropped, or not let in: again
                    await asyncio.wait_for(self.done.wait(), 0.2)
            self.settled.set()

    async def _visit(self, client: Client, *, hold: Callable[[], Awaitable[Any]]) -> None:
        """Open a socket, read its presence, keep it open (reading) while ``hold`` runs."""
        query = urlencode({"token": await client.fresh_token()})
        url = f"{client.ws_url}/ws/{quote(self.room, safe='')}?{query}"
        try:
            async with connect(url, open_timeout=HTTP_TIMEOUT_S, max_size=None) as ws:
                async with asyncio.timeout(HTTP_TIMEOUT_S):
                    while json.loads(await ws.recv()).get("type") != "presence":
                        pass
                self.events["joined"] += 1
                self.ready.set()
                if self.joins:
                    self.settled.set()
                draining = asyncio.create_task(_drain(ws))
                holding = asyncio.ensure_future(hold())
                try:  # until the hold ends, or the server closes the socket
                    await asyncio.wait({draining, holding}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    draining.cancel()
                    holding.cancel()
                    await asyncio.gather(draining, holding, return_exceptions=True)
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else ""
            self.events[f"join failed {type(exc).__name__} {status}".strip()] += 1


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


class Prober:
    """From the fault's end: every 0.5 s a round of probes, one posted on each server,
    until a round has reached every watcher (or ``limit_s`` passes)."""

    EVERY_S = 0.5

    def __init__(self, clients: dict[str, Client], room: str, clock: Clock) -> None:
        self.clients, self.room, self.clock = clients, room, clock
        self.rounds: list[ProbeRound] = []
        self.failures: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, watchers: list[Watcher], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline and not self._recovered(watchers):
                number = len(self.rounds) + 1
                tags = tuple(f"probe-{server}#{number}" for server in self.clients)
                self.rounds.append(ProbeRound(self.clock.now(), tags))
                for server, tag in zip(self.clients, tags, strict=True):
                    task = asyncio.create_task(self._post(server, tag))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(self.EVERY_S)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _recovered(self, watchers: list[Watcher]) -> bool:
        return any(all(tag in w.seen for w in watchers for tag in r.tags) for r in self.rounds)

    async def _post(self, server: str, tag: str) -> None:
        try:
            await self.clients[server].post(self.room, tag_text(tag))
        except RoomchatError as exc:
            self.failures[f"{server}: {type(exc).__name__}"] += 1
