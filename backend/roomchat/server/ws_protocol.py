"""roomchat's WebSocket protocol for uvicorn: websockets-sansio, plus a frame sink
(``realtime.sink.FrameSink``: here ``TransportSink``).

Through ASGI a server frames every message once per recipient: uvicorn encodes the text,
frames it and joins the bytes for each socket. A room's event is the same bytes for every
member (server frames are unmasked), so roomchat frames it once (``Outgoing.frame``) and
this protocol lets the app write those bytes straight to each socket's transport, with
no coroutine per recipient. It offers a ``FrameSink`` in the scope's extensions
(``scope["extensions"]["roomchat.frames"]["sink"]``) on every upgraded socket that
negotiated no extension (permessage-deflate would need per-socket compression).

``roomchat serve`` uses it (``server.options.uvicorn_options``). Under any other server, or
``uvicorn roomchat.main:app``, the extension is absent and sockets send through ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import Any
from weakref import WeakKeyDictionary

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from roomchat.limits.buckets import TokenBucket
from roomchat.realtime.closecodes import ABUSE
from roomchat.realtime.sink import CLOSE_TIMEOUT_SECONDS, EXTENSION
from roomchat.server.http_protocol import error_response

log = logging.getLogger(__name__)
#: What is handed to the WebSocket parser at once, and how many frames one turn of the
#: event loop parses for one socket (the smallest frames are 6 bytes: a slice holds 341).
READ_SLICE_BYTES = 2048
FRAMES_PER_TURN = 64
#: After its close frame, how much more the server reads looking for the client's close
#: frame (whatever a client had in flight when the close came), before reading nothing.
CLOSING_READ_BYTES = 131_072
CLOSING_READ_FRAMES = 32


class TransportSink:
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
    """uvicorn's ``websockets-sansio`` protocol, offering a ``FrameSink`` to the app, lighter
    per socket (an idle socket holds thousands of them), and holding to the limits API.md
    sets on one hostile client:

    - **Reading is flow-controlled.** What arrives is parsed a slice at a time, and at
      most ``FRAMES_PER_TURN`` frames in one turn of the loop (the rest waits, unread, for
      the next), so a client sending the smallest frames there are cannot keep the loop
      to itself. Nothing is read while the app has frames it has not taken yet, nor while
      the transport holds more than its high-water mark of unsent bytes (the client does
      not read): every byte written, pongs included, counts.
    - **Pings are answered only while the client reads**: while the transport is over its
      mark, a ping gets no pong (and no more are read). **Control frames count**: pings
      and pongs past the message rate (``ROOMCHAT_MESSAGES_PER_SECOND``, ``_BURST``) go
      unanswered, and as many again past it close the socket as abusive (1008).
    - **Once its close frame is sent the server reads little more**: up to
      ``CLOSING_READ_BYTES`` / ``CLOSING_READ_FRAMES`` (checked after each slice), to
      find the client's own close frame, and discards it all; then nothing. The close
      frame goes out even while the transport is over its mark, and the connection is
      aborted ``CLOSE_TIMEOUT_SECONDS`` after it, finished or not. Every other way this
      protocol closes a transport (a refused handshake, the client's own close, a failed
      keepalive, shutdown) gets the same cut-off, so no client can hold its connection
      by not reading.
    - **A WebSocket layer refusal is answered.** An upgrade whose request line or headers
      the WebSocket parser refuses (over 8 KiB, over 128 headers) gets websockets' status
      (414, 431, or 400) with a JSON ``{"detail"}`` body, and the connection is closed.
    - **What anyone can do is not an error.** uvicorn logs "ASGI callable returned
      without completing handshake" after a denial response (``send_denial_response``),
      which is how roomchat answers every refused handshake; here the denial completes
      it. A text frame that is not UTF-8 closes the socket (1007) without a traceback.
    """

    def __init__(
        self,
        *args: Any,
        control_frames_per_second: float = 5.0,
        control_frame_burst: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()
        self.close_timeout = CLOSE_TIMEOUT_SECONDS
        control_rate = (control_frames_per_second, control_frame_burst)
        if control_rate != self._control_rate:  # (the default needs no room per socket)
            self._control_rate = control_rate

    # Per-socket state, as class defaults: an idle socket's instance holds none of it.
    _unread: bytearray | None = None  # received, not parsed yet
    _reading_paused = False  # whether this protocol paused the transport's reading
    _drain_scheduled = False
    _closing_bytes_left = _closing_frames_left = 0  # what is still read after the close
    _cut_off: asyncio.TimerHandle | None = None
    _app_closed = False  # the close came from the app (not from this protocol)
    _control_rate: tuple[float, int] = (5.0, 20)
    _control: TokenBucket | None = None  # the client's pings and pongs, from its first
    _control_strikes: TokenBucket | None = None  # from its first one past the rate

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            sink = TransportSink(self, EndOfTurnWrites.of(self.loop))
            self.scope["extensions"][EXTENSION] = {"sink": sink}

    # -- reading ---------------------------------------------------------------------------

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

    # -- closing ---------------------------------------------------------------------------

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
        ):
            self._app_closed = True
            self._send_close(message.get("code", 1000), message.get("reason") or "")
            return
        if self.close_sent and not self._app_closed and self.initial_response is None:
            # This protocol closed the socket (a bad frame, abuse, keepalive, shutdown)
            # while the app was still sending, maybe before its first frame: to the app
            # the client is gone, as it will be, not an "unexpected ASGI message" error.
            raise ClientDisconnected()
        await super().send(message)
        if self.initial_response is not None and self.close_sent:
            self.handshake_complete = True  # a denial response completes the handshake
        self._cut_off_if_closing()

    def _send_close(self, code: int, reason: str) -> None:
        """Send the close frame now, even past the transport's mark (it is the last
        thing the client gets), and read little more."""
        if self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._closing_bytes_left = CLOSING_READ_BYTES
        self._closing_frames_left = CLOSING_READ_FRAMES
        self.close_timer = self._arm_cut_off()
        self._may_read_again()  # the app's unread frames no longer hold reading up

    def handle_close(self, event: Frame) -> None:
        if self.close_sent:
            # The client answered the close: the handshake is complete. The cut-off
            # stays armed, for a client that never reads what is still buffered for it.
            self.transport.close()
            return
        super().handle_close(event)

    def _arm_cut_off(self) -> asyncio.TimerHandle:
        """Abort the connection ``close_timeout`` from now, unless already due to be
        (uvicorn's ``shutdown`` cancels what it takes for its own close timer)."""
        if self._cut_off is None or self._cut_off.cancelled():
            self._cut_off = self.loop.call_later(self.close_timeout, self._abort)
        return self._cut_off

    def _cut_off_if_closing(self) -> None:
        if self.transport.is_closing() and not self.disconnected:
            self._arm_cut_off()

    def _abort(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._cut_off_if_closing()

    def shutdown(self) -> None:
        super().shutdown()
        self._cut_off_if_closing()

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        super().on_task_complete(task)
        self._cut_off_if_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unread = None
        if self._cut_off is not None:
            self._cut_off.cancel()
        super().connection_lost(exc)


def _why(status: int) -> str:
    return {414: "request line too long", 431: "too many or too large headers"}.get(
        status, "not a valid WebSocket request"
    )
