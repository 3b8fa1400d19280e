"""The load side's sockets: picows (Cython) listeners that stamp, count and check messages.

Every benchmark message carries ``~SENDER:SEQ:SEND_NS~`` at the start of its text, so a
roomchat event (``{"type":"message",…,"text":"~…~…",…}``) and the baseline's raw text are
measured the same way. Send and receive times come from one clock in one process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import jwt
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

now_ns = time.perf_counter_ns

#: Frames roomchat sends on accept before the room's events: history, then presence.
ROOMCHAT_INITIAL_FRAMES = 2

#: Called for each benchmark message: (listener, sender, seq, send_ns, recv_ns).
OnMessage = Callable[["Member", int, int, int, int], None]
#: Called for any other text frame (join, leave, presence, errors …).
OnOther = Callable[["Member", bytes], None]


def mint_token(username: str, secret: str, minutes: int = 120) -> str:
    """An access token as API.md defines it: HS256, claims sub, iat, exp."""
    issued = datetime.now(UTC)
    claims = {
        "sub": username,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
    }
    return str(jwt.encode(claims, secret, algorithm="HS256"))


def bench_text(sender: int, seq: int, size: int) -> bytes:
    """A message text of ``size`` bytes, stamped with who sent it, its number and when."""
    head = f"~{sender}:{seq}:{now_ns()}~".encode()
    return head + b"x" * max(0, size - len(head))


class Activity:
    """When any socket of this process last received a frame."""

    last_frame_ns = 0


async def settle(quiet: float = 0.5, limit: float = 60.0) -> float:
    """Wait until no frame has arrived for ``quiet`` s (join floods done); return the wait."""
    start = now_ns()
    while (now_ns() - start) / 1e9 < limit:
        idle = (now_ns() - Activity.last_frame_ns) / 1e9
        if idle >= quiet:
            break
        await asyncio.sleep(quiet - idle)
    return (now_ns() - start) / 1e9


def no_other(_member: Member, _payload: bytes) -> None:
    pass


class Member(WSListener):  # type: ignore[misc]
    """One socket in a room; hands each stamped message to ``on_message``."""

    def __init__(
        self, index: int, initial_frames: int, on_message: OnMessage, on_other: OnOther
    ) -> None:
        super().__init__()
        self.index = index
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.errors = 0
        self.connect_ns = 0  # from starting the handshake to ready
        self._initial = initial_frames
        self._on_message = on_message
        self._on_other = on_other

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self._initial == 0:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        Activity.last_frame_ns = received = now_ns()
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            if not self.closed.done():
                self.closed.set_result(frame.get_close_code())
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind != WSMsgType.TEXT:
            return
        if not frame.fin:
            self.errors += 1  # neither server fragments; counted, never expected
            return
        payload = frame.get_payload_as_bytes()
        if self._initial:
            self._initial -= 1
            if self._initial == 0:
                self.ready.set_result(None)
            return
        start = payload.find(b"~")
        if start < 0:
            self._on_other(self, payload)
            return
        end = payload.find(b"~", start + 1)
        sender, seq, sent = payload[start + 1 : end].split(b":")
        self._on_message(self, int(sender), int(seq), int(sent), received)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before ready"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.send_close()
            self.transport.disconnect()


class Connector:
    """Opens sockets to one server, with or without a token, a bounded number at a time."""

    def __init__(self, *, ws_url: str, auth: bool, secret: str, concurrency: int = 100) -> None:
        self.ws_url = ws_url
        self.auth = auth
        self.secret = secret
        self.initial_frames = ROOMCHAT_INITIAL_FRAMES if auth else 0
        self._slots = asyncio.Semaphore(concurrency)

    def url(self, room: str, username: str) -> str:
        if not self.auth:
            return f"{self.ws_url}/ws/{room}"
        return f"{self.ws_url}/ws/{room}?token={mint_token(username, self.secret)}"

    async def open(
        self,
        room: str,
        username: str,
        index: int,
        on_message: OnMessage,
        on_other: OnOther = no_other,
        url: str | None = None,
    ) -> Member:
        """Connect and wait for the socket to be ready (roomchat: history and presence in)."""
        url = url or self.url(room, username)
        async with self._slots:
            begun = now_ns()
            _, member = await ws_connect(
                lambda: Member(index, self.initial_frames, on_message, on_other),
                url,
                websocket_handshake_timeout=30,
            )
            assert isinstance(member, Member)
            await asyncio.wait_for(member.ready, 30)
            member.connect_ns = now_ns() - begun
        return member

    async def open_all(
        self, plan: list[tuple[str, str]], on_message: OnMessage, on_other: OnOther = no_other
    ) -> list[Member]:
        """Open one socket per ``(room, username)``, ``index`` being the position in ``plan``."""
        urls = [self.url(room, user) for room, user in plan]  # minted before the clock starts
        return list(
            await asyncio.gather(
                *(
                    self.open(room, user, i, on_message, on_other, url=urls[i])
                    for i, (room, user) in enumerate(plan)
                )
            )
        )


async def reopen_dropped(
    connector: Connector,
    plan: list[tuple[str, str]],
    members: list[Member],
    on_message: OnMessage,
    on_other: OnOther = no_other,
) -> list[int | None]:
    """Reopen the sockets the server closed while the room filled; return their close codes.

    A server may drop early members while hundreds join at once (roomchat: their queues
    overflow with join events, 1013). The run goes on with every member connected, and the
    drops are reported as a figure of their own.
    """
    codes: list[int | None] = []
    for index, member in enumerate(members):
        if member.closed.done():
            codes.append(member.closed.result())
            room, user = plan[index]
            members[index] = await connector.open(room, user, index, on_message, on_other)
    if codes:
        await settle()
    return codes


async def close_all(members: list[Member], timeout: float = 10.0) -> None:
    for member in members:
        member.close()
    pending = [m.closed for m in members if not m.closed.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def ports_of(members: list[Member]) -> set[int]:
    ports = set()
    for member in members:
        if member.transport is not None:
            sock: Any = member.transport.underlying_transport.get_extra_info("socket")
            if sock is not None:
                ports.add(sock.getsockname()[1])
    return ports
