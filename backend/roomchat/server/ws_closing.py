"""The closing handshake and its deadlines, for ``RoomchatWebSocketProtocol``.

- **Once its close frame is sent the server reads little more**: up to
  ``CLOSING_READ_BYTES`` / ``CLOSING_READ_FRAMES`` (checked after each slice, by
  ``ws_reading``), to find the client's own close frame, and discards it all; then
  nothing. The close frame goes out even while the transport is over its mark, and the
  connection is aborted ``CLOSE_TIMEOUT_SECONDS`` after it, finished or not. Every other
  way the protocol closes a transport (a refused handshake, the client's own close, a
  failed keepalive, shutdown) gets the same cut-off, so no client can hold its connection
  by not reading.
- uvicorn logs "ASGI callable returned without completing handshake" after a denial
  response (``send_denial_response``), which is how roomchat answers every refused
  handshake; here the denial completes it.
"""

from __future__ import annotations

import asyncio

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame

#: After its close frame, how much more the server reads looking for the client's close
#: frame (whatever a client had in flight when the close came), before reading nothing.
CLOSING_READ_BYTES = 131_072
CLOSING_READ_FRAMES = 32


class ClosingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol, closing as described above. ``close_timeout`` is the cut-off."""

    # Per-socket state, as class defaults: an idle socket's instance holds none of it.
    _closing_bytes_left = _closing_frames_left = 0  # what is still read after the close
    _cut_off: asyncio.TimerHandle | None = None
    _app_closed = False  # the close came from the app (not from this protocol)

    def _may_read_again(self) -> None:
        """Something that kept the protocol from reading has changed (``ws_reading``)."""

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
        if self._cut_off is not None:
            self._cut_off.cancel()
        super().connection_lost(exc)
