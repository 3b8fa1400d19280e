"""roomchat's WebSocket protocol for uvicorn: websockets-sansio, plus a frame sink.

Through ASGI a server frames every message once per recipient: uvicorn encodes the text,
frames it and joins the bytes for each socket. A room's event is the same bytes for every
member (server frames are unmasked), so roomchat frames it once (``Outgoing.frame``) and
this protocol lets the app write those bytes straight to each socket's transport, with
no coroutine per recipient. It offers a ``FrameSink`` in the scope's extensions
(``scope["extensions"]["roomchat.frames"]["sink"]``) on every upgraded socket that
negotiated no extension (permessage-deflate would need per-socket compression).

``roomchat serve`` uses it (``server.uvicorn_options``). Under any other server, or
``uvicorn roomchat.main:app``, the extension is absent and sockets send through ASGI.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from weakref import WeakKeyDictionary

from starlette.types import Scope
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

EXTENSION = "roomchat.frames"
log = logging.getLogger(__name__)


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame: what a server sends for ``text``."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class FrameSink:
    """Writes whole, ready-made frames to one socket's transport.

    Frames accepted during one turn of the event loop go out together at its end, in
    one system call (``writelines``), rather than one ``send()`` each: when a room's
    listener hands over several events at once (a group commit stores several messages),
    each member costs one write, not one per event. Nothing waits longer than the
    current turn.
    """

    __slots__ = ("_pending", "_protocol", "_turn")

    def __init__(self, protocol: RoomchatWebSocketProtocol, turn: EndOfTurnWrites) -> None:
        self._protocol = protocol
        self._pending: list[bytes] | None = None
        self._turn = turn

    def write(self, frame: bytes) -> bool:
        """Take ``frame`` for this turn's write; False, taking nothing, while the
        transport is paused (its buffer is over the high-water mark) or closing."""
        pending = self._pending
        if pending is not None:
            pending.append(frame)
            return True
        if self._closing() or not self._protocol.writable.is_set():
            return False
        self._pending = [frame]
        self._turn.add(self)
        return True

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if not pending or self._closing():
            return  # closing: what was pending goes with it, as from a queue
        transport = self._protocol.transport
        if len(pending) == 1:
            transport.write(pending[0])
        else:
            transport.writelines(pending)

    async def wait_writable(self) -> bool:
        """Wait until the transport takes writes again; False if the socket is closing."""
        await self._protocol.writable.wait()
        return not self._closing()

    def _closing(self) -> bool:
        """The app has sent its close frame, or the connection is going away."""
        return bool(self._protocol.close_sent or self._protocol.transport.is_closing())

    def abort_unless_closed_in(self, seconds: float) -> None:
        """Let go of the socket after ``seconds`` even if the peer never reads its close
        frame: a transport's ``close()`` waits for every buffered byte to be taken, so a
        client that stopped reading would otherwise hold the connection indefinitely."""
        protocol = self._protocol
        protocol.loop.call_later(seconds, self._abort_if_connected)

    def _abort_if_connected(self) -> None:
        if not self._protocol.disconnected:
            self._protocol.transport.abort()


class EndOfTurnWrites:
    """The sinks with frames pending in this turn of the loop; flushed at its end."""

    __slots__ = ("_due", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[FrameSink] = []

    def add(self, sink: FrameSink) -> None:
        if not self._due:
            self._loop.call_soon(self._flush)
        self._due.append(sink)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for sink in due:
            try:
                sink.flush()
            except Exception:  # one broken transport must not keep the rest waiting
                log.exception("writing to a socket failed")

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> EndOfTurnWrites:
        """One per event loop (a test process runs several servers, each in its thread)."""
        turn = _TURNS.get(loop)
        if turn is None:
            turn = _TURNS[loop] = cls(loop)
        return turn


_TURNS: WeakKeyDictionary[asyncio.AbstractEventLoop, EndOfTurnWrites] = WeakKeyDictionary()


def frame_sink(scope: Scope) -> FrameSink | None:
    """The socket's sink when the server offers one, else None (send through ASGI)."""
    extension: dict[str, Any] | None = scope.get("extensions", {}).get(EXTENSION)
    return extension["sink"] if extension else None


class _Inbox:
    """What uvicorn needs of its per-socket ``asyncio.Queue`` (one reader: the app's
    ``receive``), without the queue's three deques and its ``Event``'s fourth: 3 KiB of
    an idle socket's memory."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)  # holds one or two events: uvicorn pauses reading

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """What uvicorn needs of its ``writable`` ``asyncio.Event``, without a deque of
    waiters per socket (created only while someone waits)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        while not self._value:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True


class RoomchatWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, offering a ``FrameSink`` to the app, and
    lighter per socket (an idle socket holds thousands of them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            sink = FrameSink(self, EndOfTurnWrites.of(self.loop))
            self.scope["extensions"][EXTENSION] = {"sink": sink}
