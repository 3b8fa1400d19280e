"""Reading what a socket sends, flow-controlled, for ``RoomchatWebSocketProtocol``.

- **Reading is flow-controlled.** What arrives is parsed a slice at a time, and at most
  ``FRAMES_PER_TURN`` frames in one turn of the loop (the rest waits, unread, for the
  next), so a client sending the smallest frames there are cannot keep the loop to
  itself. Nothing is read while the app has frames it has not taken yet, nor while the
  transport holds more than its high-water mark of unsent bytes (the client does not
  read): every byte written, pongs included, counts.
- **Pings are answered only while the client reads**: while the transport is over its
  mark, a ping gets no pong (and no more are read). **Control frames count**: pings and
  pongs past the message rate (``ROOMCHAT_MESSAGES_PER_SECOND``, ``_BURST``) go
  unanswered, and as many again past it close the socket as abusive (1008).
- **A WebSocket layer refusal is answered.** An upgrade whose request line or headers the
  WebSocket parser refuses (over 8 KiB, over 128 headers) gets websockets' status (414,
  431, or 400) with a JSON ``{"detail"}`` body, and the connection is closed.
- A text frame that is not UTF-8 closes the socket (1007) without a traceback: anyone can
  send one.
"""

from __future__ import annotations

import contextlib
import logging
from http import HTTPStatus

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.utils import ClientDisconnected
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from roomchat.limits.buckets import TokenBucket
from roomchat.realtime.closecodes import ABUSE
from roomchat.server.http_protocol import error_response
from roomchat.server.ws_closing import ClosingProtocol

log = logging.getLogger(__name__)
#: What is handed to the WebSocket parser at once, and how many frames one turn of the
#: event loop parses for one socket (the smallest frames are 6 bytes: a slice holds 341).
READ_SLICE_BYTES = 2048
FRAMES_PER_TURN = 64


class ReadingProtocol(ClosingProtocol):
    """The closing protocol, reading as described above; ``_control_rate`` is the rate and
    burst of the client's pings and pongs."""

    # Per-socket state, as class defaults: an idle socket's instance holds none of it.
    _unread: bytearray | None = None  # received, not parsed yet
    _reading_paused = False  # whether this protocol paused the transport's reading
    _drain_scheduled = False
    _control_rate: tuple[float, int] = (5.0, 20)
    _control: TokenBucket | None = None  # the client's pings and pongs, from its first
    _control_strikes: TokenBucket | None = None  # from its first one past the rate

    def data_received(self, data: bytes) -> None:
        if self._unread is None and len(data) <= READ_SLICE_BYTES and self._may_read():
            self._feed(data)  # the usual case: a few frames, read at once
        else:
            if self._unread is None:
                self._unread = bytearray(data)
            else:
                self._unread += data
            self._drain()
        self._update_reading()

    def _may_read(self) -> bool:
        """Whether to parse more of what the client sent, now."""
        if self.disconnected or not self.writable.is_set():
            return False  # the client does not read what it is sent: read no more of it
        if self.close_sent:
            return self._closing_frames_left > 0 and self._closing_bytes_left > 0
        return not self.read_paused  # the app has not taken what came before

    def _drain(self) -> None:
        """Parse what waits unread, while reading is allowed, up to ``FRAMES_PER_TURN``
        frames; a later turn of the loop takes the rest."""
        self._drain_scheduled = False
        frames = 0
        while self._unread and self._may_read():
            if frames >= FRAMES_PER_TURN:
                self._schedule_drain()
                break
            chunk = bytes(self._unread[:READ_SLICE_BYTES])
            del self._unread[:READ_SLICE_BYTES]
            frames += self._feed(chunk)
        if self._unread and self.close_sent and not self._may_read():
            self._closing_frames_left = 0  # the stream is cut: never parse again
            self._unread = None  # discarded: the socket is closing
        elif not self._unread:
            self._unread = None
        self._update_reading()

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon(self._drain)

    def _may_read_again(self) -> None:
        """Something that kept this protocol from reading has changed."""
        if self._unread:
            self._schedule_drain()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause the transport's reading while nothing should be read (or a backlog waits
        unread), resume it otherwise."""
        pause = bool(self._unread) or not self._may_read()
        if pause != self._reading_paused and not self.transport.is_closing():
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _feed(self, data: bytes) -> int:
        """Parse ``data`` and act on its events; return how many frames it held."""
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:
            self.handle_parser_exception()
            self._cut_off_if_closing()
            return 0
        if not self.handshake_initiated and conn.handshake_exc is not None:
            self._refuse_request()
            self._cut_off_if_closing()
            return 0
        events = conn.events_received()
        if self.close_sent:
            self._closing_bytes_left -= len(data)
            self._closing_frames_left -= len(events)
        for event in events:
            if isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.TEXT:
                    self.handle_text(event)
                elif opcode is Opcode.BINARY:
                    self.handle_bytes(event)
                elif opcode is Opcode.CONT:
                    self.handle_cont(event)
                elif opcode is Opcode.PING:
                    if self._control_frame_allowed():
                        self.handle_ping()
                elif opcode is Opcode.PONG:
                    pending = self.pending_ping_payload
                    if pending is not None and bytes(event.data) == pending:
                        self.handle_pong(event)  # the answer to the server's keepalive
                    else:
                        self._control_frame_allowed()  # unsolicited: counted, ignored
                else:
                    self.handle_close(event)
            elif isinstance(event, Request):
                self.handle_connect(event)
        self._cut_off_if_closing()
        return len(events)

    def _refuse_request(self) -> None:
        """The WebSocket parser refused the request itself (its line or headers too
        large): answer with the status it chose, as JSON, and close."""
        refusal = b"".join(self.conn.data_to_send())
        status = int(refusal[9:12]) if refusal[:9] == b"HTTP/1.1 " else 400
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.write(
            error_response(status, HTTPStatus(status).phrase, "request refused: " + _why(status))
        )
        self.transport.close()

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, but the pause is this protocol's to make (``_update_reading``)."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # the app is past its close: discard
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:
                # 1007, as uvicorn does, but without its error-level traceback: anyone
                # can send a text frame that is not UTF-8.
                log.debug("closing a socket: a text frame is not UTF-8")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        self.read_paused = True

    async def receive(self) -> ASGIReceiveEvent:
        message: ASGIReceiveEvent = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self._may_read_again()
        return message

    def _control_frame_allowed(self) -> bool:
        """Pings and pongs at the message rate; past it they are ignored, and as many
        again past it again close the socket as abusive (1008), as messages do."""
        control = self._control
        if control is None:
            rate, burst = self._control_rate
            control = self._control = TokenBucket(rate=rate, burst=burst)
        if control.take():
            return True
        self.conn.data_to_send()  # the pong websockets prepared: not sent
        strikes = self._control_strikes
        if strikes is None:
            rate, burst = self._control_rate
            strikes = self._control_strikes = TokenBucket(rate=rate, burst=burst)
        if not strikes.take() and self.handshake_complete and not self.close_sent:
            log.info("closing a socket: too many control frames")
            with contextlib.suppress(ClientDisconnected):  # it is going already
                self._send_close(ABUSE.code, ABUSE.reason)
        return False

    def handle_ping(self) -> None:
        pong = self.conn.data_to_send()
        if self.writable.is_set() and not self.close_sent:
            self.transport.write(b"".join(pong))
        # else the pong is dropped: the client is not reading, or the socket is closing

    def pause_writing(self) -> None:
        self.writable.clear()
        self._update_reading()

    def resume_writing(self) -> None:
        self.writable.set()
        self._may_read_again()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unread = None
        super().connection_lost(exc)


def _why(status: int) -> str:
    return {414: "request line too long", 431: "too many or too large headers"}.get(
        status, "not a valid WebSocket request"
    )
