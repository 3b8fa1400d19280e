"""A raw WebSocket client: reads only when asked, and sends any frame, even a malformed one."""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from typing import ClassVar, NamedTuple

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

RECEIVE_BUFFER_BYTES = 4096


class RawClient:
    """Sans-I/O ``websockets`` over a plain socket with a tiny receive buffer.

    After ``open`` nothing reads the socket until ``close_code``, so the server's writes pile
    up in the kernel and in the server itself, exactly as with a client on a dead network:
    the slowest possible member.
    """

    #: Every client not yet closed: conftest closes them after each test, so that one a
    #: failed test left open is not found by the garbage collector in a later test.
    made: ClassVar[weakref.WeakSet[RawClient]] = weakref.WeakSet()

    def __init__(self, url: str) -> None:
        RawClient.made.add(self)
        self._protocol = ClientProtocol(parse_uri(url))
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self._url = url

    @property
    def port(self) -> int:
        """The client's own port (its side of the connection)."""
        port: int = self._socket.getsockname()[1]
        return port

    async def open(self, port: int) -> None:
        await asyncio.to_thread(self._handshake, port)

    def _handshake(self, port: int) -> None:
        self._socket.settimeout(10)
        self._socket.connect(("127.0.0.1", port))
        self._protocol.send_request(self._protocol.connect())
        self._flush()
        while self._protocol.handshake_exc is None and not self._handshake_done():
            self._protocol.receive_data(self._socket.recv(1024))
        if self._protocol.handshake_exc is not None:
            raise self._protocol.handshake_exc

    def _handshake_done(self) -> bool:
        return any(not isinstance(e, Frame) for e in self._protocol.events_received()) or (
            self._protocol.state.name == "OPEN"
        )

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._socket.sendall(data)

    async def send_raw(self, frame: Frame) -> None:
        """Send a frame as given, even one a well-behaved client would refuse to send."""
        self._protocol.send_frame(frame)
        await asyncio.to_thread(self._flush)

    async def close_code(self, timeout: float = 30.0) -> int | None:
        """Start reading again; return the code of the server's close frame."""
        return await asyncio.wait_for(asyncio.to_thread(self._read_to_close), timeout)

    def _read_to_close(self) -> int | None:
        """The server's close code; None when the connection ends without a close frame."""
        try:
            return self._read_close_frame()
        except ConnectionResetError:
            return None
        finally:
            self._socket.close()

    def _read_close_frame(self) -> int | None:
        """Read up to the server's close frame and return its code, leaving the socket
        open; None when the connection ends without one."""
        while True:
            data = self._socket.recv(65536)
            if not data:
                return None
            self._protocol.receive_data(data)
            for event in self._protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    close = self._protocol.close_rcvd
                    return close.code if close else None

    def abandon(self) -> None:
        """Close the connection without reading what the server sent."""
        self._socket.close()

    def close_now(self) -> None:
        self._socket.close()


#: The smallest frames a client can send (masked with a zero key, as RFC 6455 allows).
EMPTY_TEXT_FRAME = b"\x81\x80\x00\x00\x00\x00"
#: A ping with the largest payload a control frame may carry (125 bytes).
BIG_PING_FRAME = b"\x89\xfd\x00\x00\x00\x00" + b"p" * 125


def masked_frame(opcode: Opcode, payload: bytes = b"") -> bytes:
    """One final client frame, masked with a zero key (so it costs nothing to build)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode.value, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


class Flood(NamedTuple):
    sent: int  # bytes the kernel took
    broken_after: float | None  # seconds until the connection broke; None: still open
    stalled: bool  # a send waited STALL_SECONDS: the server stopped reading


STALL_SECONDS = 1.0


class RawFloodingClient(RawClient):
    """A raw client that can also read up to the server's close frame without answering
    it, and then send the same bytes again and again (a hostile client's flood).

    Its send buffer is small too, so a server that stops reading shows up at once.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)

    async def send_bytes(self, data: bytes) -> None:
        """Send bytes as they are (whole frames, usually many at once)."""
        await asyncio.to_thread(self._socket.sendall, data)

    async def read_close_frame(self, timeout: float = 10.0) -> int | None:
        """Read until the server's close frame; do not answer it, keep the socket open."""
        return await asyncio.wait_for(asyncio.to_thread(self._read_close_frame), timeout)

    async def flood(
        self, chunk: bytes, *, limit: int, seconds: float, until_stalled: bool = False
    ) -> Flood:
        """Send ``chunk`` (whole frames) over and over, never reading: until ``limit``
        bytes are sent, the connection breaks, ``seconds`` pass, or (``until_stalled``)
        the server stops reading. Frames stay whole even when a send is cut short."""
        return await asyncio.to_thread(self._flood, chunk, limit, seconds, until_stalled)

    def _flood(self, chunk: bytes, limit: int, seconds: float, until_stalled: bool) -> Flood:
        started = time.monotonic()
        deadline = started + seconds
        self._socket.settimeout(0.1)
        sent, offset, waiting_since, stalled = 0, 0, None, False
        view = memoryview(chunk)
        while sent < limit and time.monotonic() < deadline:
            try:
                n = self._socket.send(view[offset:])
            except TimeoutError:
                waiting_since = waiting_since or time.monotonic()
                stalled = stalled or time.monotonic() - waiting_since >= STALL_SECONDS
                if stalled and until_stalled:
                    break
                continue
            except OSError:  # reset, broken pipe: the server let go
                return Flood(sent, time.monotonic() - started, stalled)
            waiting_since = None
            sent += n
            offset = (offset + n) % len(chunk)
        return Flood(sent, None, stalled)
