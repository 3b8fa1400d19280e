"""A byte-level client: HTTP/1.1 and WebSocket over plain non-blocking sockets.

Nothing here reads unless asked (``loop.sock_recv``), so a socket that is never read
really leaves the server's writes in the kernel, and anything can be sent, in any
amount, from any loopback address (``source``): the attacker and the probe come from
different addresses, as they would on the internet, so a per-address limit that
throttles one does not throttle the other.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 65536
MAX_BODY_BYTES = 1 << 20
MAX_FRAME_BYTES = 16 << 20

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class RefusedError(ConnectionError):
    """The server answered a WebSocket upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


async def open_socket(
    port: int, *, source: str, timeout: float, receive_buffer: int | None = None
) -> socket.socket:
    """A connected non-blocking TCP socket from ``source`` to 127.0.0.1:``port``.

    ``receive_buffer`` is set before connecting, so the window the client advertises is
    small from the first segment on (what a client on a dead network looks like).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((source, 0))
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): the server learns at once that we are gone."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read up to the end of an HTTP response head; (status, headers, bytes after it)."""
    loop = asyncio.get_running_loop()
    received = b""
    while b"\r\n\r\n" not in received:
        if len(received) > MAX_HEAD_BYTES:
            raise ConnectionError("response head too long")
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        received += chunk
    head, rest = received.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def http(
    port: int,
    method: str,
    path: str,
    *,
    source: str,
    timeout: float,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """One request on a fresh connection (``Connection: close``), all within ``timeout``."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        sock = await open_socket(port, source=source, timeout=timeout)
        try:
            head = [
                f"{method} {path} HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                "Connection: close",
                f"Content-Length: {len(body)}",
            ]
            if content_type:
                head.append(f"Content-Type: {content_type}")
            await loop.sock_sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
            status, headers, rest = await _read_head(sock)
            length = headers.get("content-length")
            want = min(int(length), MAX_BODY_BYTES) if length and length.isdigit() else None
            while want is None or len(rest) < want:
                if len(rest) >= MAX_BODY_BYTES:
                    break
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    break  # no Content-Length (or a short body): the server closed
                rest += chunk
            return Response(status, headers, rest)
        finally:
            sock.close()


async def ws_connect(
    port: int, path: str, *, source: str, timeout: float, receive_buffer: int | None = None
) -> tuple[socket.socket, bytes]:
    """Open a WebSocket; return the socket and whatever arrived after the 101 head.

    A refusal (an HTTP status instead of 101) raises ``RefusedError`` with the status.
    """
    loop = asyncio.get_running_loop()
    sock = await open_socket(port, source=source, timeout=timeout, receive_buffer=receive_buffer)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, request.encode())
            status, _headers, rest = await _read_head(sock)
        if status != 101:
            raise RefusedError(status)
    except BaseException:
        reset(sock)
        raise
    return sock, rest


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, masked client frame (RFC 6455 §5.2), of any opcode and length."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    if not length:
        return head + mask
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return head + mask + masked


@dataclass
class FrameReader:
    """Splits what the server sent into ``(opcode, payload)`` frames (server frames are
    unmasked); a frame larger than ``limit`` raises rather than being buffered."""

    limit: int = MAX_FRAME_BYTES
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        buffer = self._buffer
        while len(buffer) >= 2:
            opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, 2)
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, 2)
                offset = 10
            if length > self.limit:
                raise ConnectionError(f"server frame of {length} bytes")
            if len(buffer) < offset + length:
                break
            frames.append((opcode, bytes(buffer[offset : offset + length])))
            del buffer[: offset + length]
        return frames


def close_code(payload: bytes) -> int:
    """The code in a close frame's payload (1005: none given)."""
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
