"""A member that stops reading: a plain socket with a tiny receive buffer.

It completes the WebSocket handshake, then reads nothing, so the server's writes pile up
in the kernel and in the server itself, as with a client on a dead network. Afterwards
``close_code`` reads everything that was queued and returns the code of the server's close
frame, or how the connection ended without one: ``"eof"`` (closed with no close frame),
``"reset"`` (aborted), ``"open"`` (still open, nothing more to read).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time

RECEIVE_BUFFER_BYTES = 4096


class StuckClient:
    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.local_port = 0
        self.last_read_ns = 0
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)

    async def open(self) -> None:
        await asyncio.to_thread(self._handshake)

    def _handshake(self) -> None:
        sock = self._socket
        sock.settimeout(30)
        sock.connect(("127.0.0.1", self.port))
        self.local_port = sock.getsockname()[1]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(1024)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            received += chunk
        status = received.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"handshake refused: {status!r}")
        self.last_read_ns = time.perf_counter_ns()
        self._buffer = received.split(b"\r\n\r\n", 1)[1]

    async def close_code(self, timeout: float, idle: float) -> int | str:
        """Read again until the close frame, EOF, ``idle`` s of silence or ``timeout``."""
        return await asyncio.to_thread(self._read_to_close, timeout, idle)

    def _read_to_close(self, timeout: float, idle: float) -> int | str:
        deadline = time.monotonic() + timeout
        buffer = self._buffer
        sock = self._socket
        try:
            while time.monotonic() < deadline:
                code, buffer = _scan_for_close(buffer)
                if code is not None:
                    return code
                sock.settimeout(min(idle, max(0.01, deadline - time.monotonic())))
                try:
                    chunk = sock.recv(1 << 20)
                except TimeoutError:
                    return "open"
                if not chunk:
                    return "eof"
                buffer += chunk
            return "open"
        except OSError:
            return "reset"
        finally:
            sock.close()

    def abandon(self) -> None:
        self._socket.close()


def _scan_for_close(buffer: bytes) -> tuple[int | None, bytes]:
    """Skip whole server frames; return the close code if a close frame is complete."""
    while len(buffer) >= 2:
        opcode = buffer[0] & 0x0F
        length = buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                break
            (length,) = struct.unpack("!H", buffer[2:4])
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                break
            (length,) = struct.unpack("!Q", buffer[2:10])
            offset = 10
        if len(buffer) < offset + length:
            break
        if opcode == 0x8:
            payload = buffer[offset : offset + length]
            return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), b""
        buffer = buffer[offset + length :]
    return None, buffer
