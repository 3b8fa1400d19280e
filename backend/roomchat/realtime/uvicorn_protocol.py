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

from typing import Any

from starlette.types import Scope
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

EXTENSION = "roomchat.frames"


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame: what a server sends for ``text``."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class FrameSink:
    """Writes whole, ready-made frames to one socket's transport."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: RoomchatWebSocketProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now; False, writing nothing, while the transport is paused
        (its buffer is over the high-water mark) or the socket is closing."""
        protocol = self._protocol
        if protocol.close_sent or not protocol.writable.is_set():
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        transport.write(frame)
        return True

    async def wait_writable(self) -> bool:
        """Wait until the transport takes writes again; False if the socket is closing."""
        protocol = self._protocol
        await protocol.writable.wait()
        return not (protocol.close_sent or protocol.transport.is_closing())

    def abort_unless_closed_in(self, seconds: float) -> None:
        """Let go of the socket after ``seconds`` even if the peer never reads its close
        frame: a transport's ``close()`` waits for every buffered byte to be taken, so a
        client that stopped reading would otherwise hold the connection indefinitely."""
        protocol = self._protocol
        protocol.loop.call_later(seconds, self._abort_if_connected)

    def _abort_if_connected(self) -> None:
        if not self._protocol.disconnected:
            self._protocol.transport.abort()


def frame_sink(scope: Scope) -> FrameSink | None:
    """The socket's sink when the server offers one, else None (send through ASGI)."""
    extension: dict[str, Any] | None = scope.get("extensions", {}).get(EXTENSION)
    return extension["sink"] if extension else None


class RoomchatWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, offering a ``FrameSink`` to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][EXTENSION] = {"sink": FrameSink(self)}
        # The parsed request (every header, twice over) is not needed once the scope
        # holds the headers; an idle socket is lighter without it.
        del self.request
