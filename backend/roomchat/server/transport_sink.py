"""Frames written straight to a socket's transport (``realtime.sink.FrameSink``), for
``RoomchatWebSocketProtocol``; what one turn of the loop wrote goes out together at its end.

Through ASGI a server frames every message once per recipient: uvicorn encodes the text,
frames it and joins the bytes for each socket. A room's event is the same bytes for every
member (server frames are unmasked), so roomchat frames it once (``Outgoing.frame``) and
the app writes those bytes straight to each socket's transport through this sink, with no
coroutine per recipient.
"""

from __future__ import annotations

import asyncio
import logging
from weakref import WeakKeyDictionary

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)


class TransportSink:
    """Writes whole, ready-made frames to one socket's transport.

    Frames accepted during one turn of the event loop go out together at its end, in
    one system call (``writelines``), rather than one ``send()`` each: when a room's
    listener hands over several events at once (a group commit stores several messages),
    each member costs one write, not one per event. Nothing waits longer than the
    current turn.
    """

    __slots__ = ("_pending", "_protocol", "_turn")

    def __init__(self, protocol: WebSocketsSansIOProtocol, turn: EndOfTurnWrites) -> None:
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
        self._due: list[TransportSink] = []

    def add(self, sink: TransportSink) -> None:
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
