"""One socket's membership in a room, and how the room's events reach it.

The room's listener calls ``offer`` once per event per member, so this is the fan-out's
per-recipient path, kept short: with a ``FrameSink`` (``roomchat serve``), an event goes
straight to the socket's transport as bytes framed once for the whole room, unless earlier
events still wait; without one it goes through ASGI from a writer task. Either way events
wait in a bounded outbox while the socket cannot take them, and a full outbox means the
client is too slow: it is dropped (1013) rather than slowing the room down.

Until the socket has had its history replay, events only queue (``start_sending`` sets
the replay's last id, and queued messages it already covered are skipped).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import uuid4

from starlette.types import Send
from starlette.websockets import WebSocketDisconnect

from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.outbox import Outbox
from roomchat.realtime.sink import FrameSink, text_frame
from roomchat.realtime.tasks import spawn

log = logging.getLogger(__name__)


class Outgoing(NamedTuple):
    """An event as every recipient gets it: built once per event, shared by all."""

    message_id: int | None  # to skip what the history replay already sent
    asgi_message: dict[str, str]  # the ready-made ASGI ``websocket.send`` message
    frame: bytes  # the same event as a whole WebSocket frame, for a ``FrameSink``
    size: int  # what it counts against a socket's outbox budget

    @classmethod
    def of(cls, event: str) -> Outgoing:
        asgi_message = {"type": "websocket.send", "text": event}
        return cls(events.message_id(event), asgi_message, text_frame(event), len(event))


@dataclass(eq=False)
class Connection:
    """One socket in one room: who, where, its bounded outbox and how it ends."""

    user: str
    room: str
    queue_bytes: int
    id: str = field(default_factory=lambda: uuid4().hex)
    outbox: Outbox[Outgoing] = field(init=False)
    #: Set once: how the session should close (None: the client is gone).
    ended: asyncio.Future[closecodes.Close | None] = field(init=False)
    _sink: FrameSink | None = field(default=None, init=False)
    _replayed_up_to: int = field(default=0, init=False)
    _sender: asyncio.Task[None] | None = field(default=None, init=False)
    _metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.queue_bytes)
        self.ended = asyncio.get_running_loop().create_future()

    def offer(self, item: Outgoing) -> bool:
        """Deliver or queue an event; True when it went out at once.

        A socket whose outbox is full is too slow and is dropped.
        """
        if item.message_id is not None and item.message_id <= self._replayed_up_to:
            return False  # the history replay had it
        sink = self._sink
        if sink is not None and not self.outbox and sink.write(item.frame):
            return True
        if not self.outbox.put(item, item.size):
            self.drop(closecodes.TRY_AGAIN_LATER)
            return False
        if sink is not None and self._sender is None:
            self._sender = spawn(self._flush(sink), name="roomchat-socket-flush")
        return False

    def drop(self, code: int) -> None:
        """Ask the socket's session to close with ``code`` (and its usual reason)."""
        self.end(closecodes.close_for(code))

    def end(self, close: closecodes.Close | None) -> None:
        """Ask the socket's session to end as ``close`` says; the first request wins."""
        if not self.ended.done():
            self.ended.set_result(close)

    # -- sending ------------------------------------------------------------------------

    def start_sending(
        self, *, replayed_up_to: int, sink: FrameSink | None, send: Send, metrics: Metrics
    ) -> None:
        """The history replay is out: send what queued since, and from now on deliver.

        With a sink, events go out from ``offer`` itself and a task runs only while some
        wait; without one, a writer task sends everything through ASGI.
        """
        self._replayed_up_to = replayed_up_to
        self._metrics = metrics
        self._sink = sink
        if sink is None:
            self._sender = spawn(self._write(send), name="roomchat-socket-writer")
        for item in self.outbox.take_now():  # what queued during the replay, offered anew
            self.offer(item)

    async def stop_sending(self) -> None:
        self._sink = None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _flush(self, sink: FrameSink) -> None:
        """Send what waits in the outbox, as fast as the transport takes it."""
        outbox = self.outbox
        try:
            while outbox:
                if not await sink.wait_writable():
                    return  # closing: the session hears of it from its reader
                waited_since, sent = outbox.oldest_put_at, 0
                while outbox:
                    item = outbox.first()
                    if not sink.write(item.frame):
                        break  # paused again: wait for it to drain
                    sent += item.message_id is not None
                    outbox.pop_first(item.size)
                self._metrics.delivered(sent, waited_since)
        except Exception:
            log.exception("flushing a socket's outbox failed")
            self.end(closecodes.SERVER_ERROR)
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    async def _write(self, send: Send) -> None:
        """Send everything through the server's ASGI ``send``, a batch per wake-up."""
        outbox = self.outbox
        try:
            while True:
                batch = await outbox.take_all()
                waited_since = outbox.oldest_put_at
                for item in batch:
                    await send(item.asgi_message)
                self._metrics.delivered(sum(i.message_id is not None for i in batch), waited_since)
        except (WebSocketDisconnect, OSError, RuntimeError):
            # The client is gone (the server may already have answered its close frame,
            # which makes a further send a RuntimeError): nothing left to close.
            self.end(None)
        except Exception:
            log.exception("sending to a socket failed")
            self.end(closecodes.SERVER_ERROR)
