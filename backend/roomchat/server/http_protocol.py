"""roomchat's HTTP protocol for uvicorn: httptools, with a deadline on every request.

uvicorn closes a kept-alive connection that stays idle after a response
(``timeout_keep_alive``), but nothing else: a connection that sends nothing at all, or
sends its request's head or body a byte at a time, stays open for as long as the client
likes, and a thousand of them use up the server's file descriptors. Here every stretch
of waiting on the client has ``ROOMCHAT_IDLE_TIMEOUT_SECONDS``:

- from the connection's start, or the end of the last response, to the end of the next
  request's head (idle, then the head);
- from the end of a head to the end of its body.

When it runs out mid-request the client gets ``408`` (unless a response has started) and
the connection is closed; an idle connection is closed without a word. Nothing is timed
while the app works on a request, or on a socket once it is upgraded.

A request's head is also limited in size: httptools itself takes a header of megabytes,
or thousands of headers. Past ``MAX_HEAD_BYTES`` the client gets ``431``.

``roomchat serve`` uses it (``server.uvicorn_options``); plain ``uvicorn roomchat.main:app``
does not, and has none of these deadlines.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from roomchat.ops.headers import HEADERS

log = logging.getLogger(__name__)

#: After closing, how long a client that reads nothing may hold the connection.
CUT_OFF_SECONDS = 5.0
#: The largest request head (request line and headers) read; browsers send 1-2 KiB.
MAX_HEAD_BYTES = 65_536


def error_response(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``{"detail"}`` body, closing the connection.

    For answers the protocol gives itself, where no app (and so no middleware) runs.
    """
    body = json.dumps({"detail": detail}).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name.lower()}: {value}" for name, value in HEADERS.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


REQUEST_TIMEOUT = error_response(408, "Request Timeout", "request timeout")
HEAD_TOO_LARGE = error_response(431, "Request Header Fields Too Large", "request head over 64 KiB")


class RoomchatHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the deadlines above."""

    def __init__(self, *args: Any, idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle_timeout = idle_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._cut_off: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's first bytes are in, its head is not
        self._head_bytes = 0  # received while in a head, roughly
        self._dropping = False  # refused: what the client still sends is dropped
        self._in_body = False  # a request's head is in, its body is not

    # -- the deadline ---------------------------------------------------------------------

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self._idle_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app waits for the rest of the body: it hears the client is gone, and
            # anything it still sends goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        if not (self._in_head or self._in_body):
            self._close()  # idle: nothing to answer
            return
        log.info(
            "closing a connection: request %s not received within %g s",
            "head" if self._in_head else "body",
            self._idle_timeout,
        )
        answered = cycle is not None and cycle.response_started and not cycle.response_complete
        self._refuse(None if answered else REQUEST_TIMEOUT)

    def _refuse(self, response: bytes | None) -> None:
        """Answer (unless a response is under way) and end the connection.

        The answer is followed by the end of our side of the stream, and what the client
        still sends is read and dropped until it closes (when the transport closes itself)
        or is cut off: closing with its bytes unread would make the kernel reset the
        connection, and the client could lose the answer.
        """
        self._disarm()
        self._dropping = True
        transport = self.transport
        if response is not None:
            transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
            self.flow.resume_reading()
            self._cut_off = self.loop.call_later(CUT_OFF_SECONDS, transport.abort)
        else:
            self._close()

    def _close(self) -> None:
        """Close, and abort if the client does not take what was written in time."""
        self._disarm()
        self.transport.close()
        if self._cut_off is None:
            self._cut_off = self.loop.call_later(CUT_OFF_SECONDS, self.transport.abort)

    # -- uvicorn's protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            return  # refused: only waiting for the client to close
        super().data_received(data)
        if self._in_head:  # the head is not complete after this chunk: it counts
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                log.info("closing a connection: request head over %d bytes", MAX_HEAD_BYTES)
                idle = self.cycle is None or self.cycle.response_complete
                self._refuse(HEAD_TOO_LARGE if idle else None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._cut_off is not None:
            self._cut_off.cancel()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the socket's own protocol takes over the connection
        self._in_head = self._in_body = False
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is before:
            return  # no request cycle: an upgrade, handle_websocket_upgrade is next
        self._in_body = True
        if self.pipeline and self.pipeline[0][0] is self.cycle:
            self._disarm()  # queued behind a response: its body is not being read yet
        else:
            self._arm()  # the body's own time

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        if self.cycle is not None and self.cycle.response_complete:
            self._arm()  # answered before its body was in: now wait for the next request
        else:
            self._disarm()  # the app's turn

    def on_response_complete(self) -> None:
        queued = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()
        elif queued is not None:  # a queued request starts, and its body is read now
            if queued.more_body:
                self._arm()
            else:
                self._disarm()
        elif not self._in_body:  # (a body still coming keeps the deadline it has)
            self._arm()  # idle until the next request
