"""A raw WebSocket client: reads only when asked, and sends any frame, even a malformed one."""

from __future__ import annotations

import asyncio
import socket

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

    def __init__(self, url: str) -> None:
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
            while True:
                try:
                    data = self._socket.recv(65536)
                except ConnectionResetError:
                    return None
                if not data:
                    return None
                self._protocol.receive_data(data)
                for event in self._protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        close = self._protocol.close_rcvd
                        return close.code if close else None
        finally:
            self._socket.close()

    def abandon(self) -> None:
        """Close the connection without reading what the server sent."""
        self._socket.close()
