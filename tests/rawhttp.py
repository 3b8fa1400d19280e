"""A raw HTTP/1.1 connection: sends bytes exactly as given, reads one response when asked."""

from __future__ import annotations

import asyncio
import json
import socket
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

TIMEOUT = 10.0


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawHTTP:
    """A blocking socket driven from threads, so the test's event loop never waits on it."""

    #: Every connection not yet closed: conftest closes them after each test.
    made: ClassVar[weakref.WeakSet[RawHTTP]] = weakref.WeakSet()

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        RawHTTP.made.add(self)
        self._buffer = b""

    async def send(self, data: bytes) -> None:
        await asyncio.to_thread(self._socket.sendall, data)

    async def response(self) -> RawResponse:
        """The next response (its body framed by Content-Length, as roomchat's always are)."""
        return await asyncio.to_thread(self._read_response)

    async def closed_by_server(self) -> bool:
        """True once the server ends the connection (FIN or reset); False if it stays open."""
        return await asyncio.to_thread(self._wait_closed)

    def close(self) -> None:
        self._socket.close()

    def _read_response(self) -> RawResponse:
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawResponse(status=int(status_line.split()[1]), headers=headers, body=body)

    def _receive(self) -> None:
        data = self._socket.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection before answering")
        self._buffer += data

    def _wait_closed(self) -> bool:
        try:
            while self._socket.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True
