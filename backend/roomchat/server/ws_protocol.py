"""roomchat's WebSocket protocol for uvicorn: websockets-sansio, plus a frame sink
(``realtime.sink.FrameSink``: here ``transport_sink.TransportSink``), lighter per socket,
and holding to the limits API.md sets on one hostile client.

It is built in layers, one job each: ``ws_closing`` (the closing handshake and its
deadlines), ``ws_reading`` (parsing what the client sends, flow control, control frames)
and, here, the sink offered to the app. It offers a ``FrameSink`` in the scope's extensions
(``scope["extensions"]["roomchat.frames"]["sink"]``) on every upgraded socket that
negotiated no extension (permessage-deflate would need per-socket compression).

``roomchat serve`` uses it (``server.options.uvicorn_options``). Under any other server, or
``uvicorn roomchat.main:app``, the extension is absent and sockets send through ASGI.
"""

from __future__ import annotations

from typing import Any

from websockets.http11 import Request

from roomchat.realtime.sink import CLOSE_TIMEOUT_SECONDS, EXTENSION
from roomchat.server.lean import Flag, Inbox
from roomchat.server.transport_sink import EndOfTurnWrites, TransportSink
from roomchat.server.ws_reading import ReadingProtocol


class RoomchatWebSocketProtocol(ReadingProtocol):
    """uvicorn's ``websockets-sansio`` protocol, reading (``ws_reading``) and closing
    (``ws_closing``) as roomchat's limits say, with a ``TransportSink`` for the app, and
    lighter per socket (an idle server holds thousands): ``lean``'s ``Inbox`` and
    ``Flag`` stand in for uvicorn's queue and event."""

    def __init__(
        self,
        *args: Any,
        control_frames_per_second: float = 5.0,
        control_frame_burst: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        self.close_timeout = CLOSE_TIMEOUT_SECONDS
        control_rate = (control_frames_per_second, control_frame_burst)
        if control_rate != self._control_rate:  # (the default needs no room per socket)
            self._control_rate = control_rate

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101 and not self.conn.extensions:
            sink = TransportSink(self, EndOfTurnWrites.of(self.loop))
            self.scope["extensions"][EXTENSION] = {"sink": sink}
