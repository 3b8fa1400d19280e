"""One socket's life after its history replay: reading frames until one side ends.

The socket's own task reads; what the room sends goes out through its ``Connection``
(straight from the fan-out, or from a writer task). Whichever ends first decides how the
socket closes: the client leaving (nothing to send), the reader (a frame too large,
abuse), or the connection being ended: by a timer when the token expires (1008), by the
room manager (1013 too slow, 1011 listener failure, 1001 shutdown) or by its writer
finding the client gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from functools import partial

from starlette.types import Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from roomchat import store
from roomchat.accounts.service import Principal
from roomchat.config import Settings
from roomchat.limits.users import UserLimits
from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.connection import Connection, Outgoing
from roomchat.realtime.frames import ChatMessage, FrameError, Typing, parse_frame
from roomchat.realtime.manager import RoomManager
from roomchat.realtime.sink import CLOSE_TIMEOUT_SECONDS, frame_sink
from roomchat.realtime.strikes import Strikes
from roomchat.realtime.writer import ChatUnavailableError, MessageWriter
from roomchat.store.schema import Message

log = logging.getLogger(__name__)

MAX_POSTS_IN_FLIGHT = 64


class SocketSession:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        send: Send,
        connection: Connection,
        principal: Principal,
        rooms: RoomManager,
        writer: MessageWriter,
        metrics: Metrics,
        limits: UserLimits,
        settings: Settings,
        replayed_up_to: int,
    ) -> None:
        self._websocket = websocket
        self._send = send  # the server's own ASGI send, for the writer
        self._connection = connection
        self._principal = principal
        self._rooms = rooms
        self._writer = writer
        self._metrics = metrics
        self._settings = settings
        self._replayed_up_to = replayed_up_to
        self._messages = limits.messages  # the user's, shared by their sockets and HTTP
        self._reads = limits.catch_up.socket(str(principal.user_id))  # a late burst's due
        self._strikes = Strikes(limits.strikes, str(principal.user_id))
        self._in_flight: set[asyncio.Future[Message]] = set()

    async def run(self) -> closecodes.Close | None:
        """Serve the socket until one side ends; return how to close it (None: client left)."""
        connection, task = self._connection, asyncio.current_task()
        assert task is not None
        remaining = (self._principal.expires_at - datetime.now(UTC)).total_seconds()
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, remaining), connection.end, closecodes.TOKEN_EXPIRED
        )
        reading = True

        def stop_reading(_ended: object) -> None:
            if reading:
                task.cancel()  # the reader waits on the client: wake it

        connection.ended.add_done_callback(stop_reading)
        connection.start_sending(
            replayed_up_to=self._replayed_up_to,
            sink=frame_sink(self._websocket.scope),
            send=self._send,
            metrics=self._metrics,
        )
        try:
            close = await self._read()
        except asyncio.CancelledError:
            if not connection.ended.done() or task.uncancel() > 0:
                raise  # cancelled from outside, not by stop_reading
            close = connection.ended.result()
        except Exception:
            log.exception("socket session failed")
            close = closecodes.SERVER_ERROR
        finally:
            reading = False
            expiry.cancel()
            connection.ended.remove_done_callback(stop_reading)
            await connection.stop_sending()
        return close

    async def _read(self) -> closecodes.Close | None:
        while True:
            self._reads.waiting()
            message = await self._websocket.receive()
            self._reads.received()
            if message["type"] == "websocket.disconnect":
                return None
            text, data = message.get("text"), message.get("bytes")
            if _too_big(text, data, self._settings.max_frame_bytes):
                return closecodes.FRAME_TOO_BIG
            if text is None:
                abusive = self._refuse("binary_frame", "send text frames (JSON or plain text)")
            else:
                abusive = await self._handle(text)
            if abusive:
                await self._settle()
                return closecodes.ABUSE

    async def _settle(self) -> None:
        """Before an abuse close, let the posts still in flight be stored or refused: after
        the close, a message of the client's not in the room's history was not stored
        (README, "Limits are per user"). Frames behind the abusive one are never read."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=CLOSE_TIMEOUT_SECONDS)

    async def _handle(self, text: str) -> bool:
        """Act on one frame; True when the client is abusive and must be closed."""
        frame = parse_frame(text, max_chars=self._settings.max_message_chars)
        if isinstance(frame, FrameError):
            return self._refuse(frame.code, frame.detail, frame.client_id)
        if isinstance(frame, Typing):
            announce, tolerated = self._strikes.typing()
            if announce:
                await self._rooms.typing(self._connection.room, self._principal.username)
            return not tolerated
        if not self._reads.take() and not await self._messages.allow(self._principal.user_id):
            self._metrics.rate_limited.labels("socket").inc()
            return self._refuse("rate_limited", "slow down: too many messages", frame.client_id)
        await self._post(frame)
        return False

    def _refuse(self, code: str, detail: str, client_id: str | None = None) -> bool:
        """Answer a frame that did nothing with an error; True once that is abuse."""
        if not self._strikes.strike():
            return True
        self._reply_error(code, detail, client_id)
        return False

    async def _post(self, frame: ChatMessage) -> None:
        """Hand the message to the writer and read on; a failure comes back as an error.

        Up to ``MAX_POSTS_IN_FLIGHT`` of a socket's messages wait to be stored at once, so
        a fast sender's messages share transactions; past that, reading waits.
        """
        principal, client_id = self._principal, frame.client_id
        draft = store.Draft(principal.user_id, principal.username, frame.text, client_id)
        try:
            stored = self._writer.submit(self._connection.room, draft)
        except ChatUnavailableError as exc:
            self._reply_error(exc.code, str(exc), client_id)
            return
        self._in_flight.add(stored)
        if client_id is None:
            stored.add_done_callback(self._after_store)
        else:  # answered with an ack, or an error naming the key
            stored.add_done_callback(partial(self._after_store, client_id=client_id))
        if len(self._in_flight) >= MAX_POSTS_IN_FLIGHT:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)

    def _after_store(self, stored: asyncio.Future[Message], client_id: str | None = None) -> None:
        self._in_flight.discard(stored)
        if stored.cancelled():
            return
        error = stored.exception()
        if error is None:
            if client_id is not None:  # the sender alone hears it; the room gets the message
                ack = events.ack_event(self._connection.room, client_id, stored.result().id)
                self._connection.offer(Outgoing.of(ack))
        elif isinstance(error, ChatUnavailableError):
            self._reply_error(error.code, str(error), client_id)
        else:
            log.error("storing a message failed", exc_info=error)

    def _reply_error(self, code: str, detail: str, client_id: str | None = None) -> None:
        self._connection.offer(Outgoing.of(events.error_event(code, detail, client_id)))


async def close_socket(websocket: WebSocket, close: closecodes.Close) -> None:
    """Send the close frame; a peer that stopped reading gets ``CLOSE_TIMEOUT_SECONDS`` to
    read up to it, and then (under ``roomchat serve``) its connection is aborted.

    Under ``roomchat serve`` the close frame goes out at once even to a client that does
    not read (the protocol writes it past the transport's mark), and the protocol reads
    no more from the socket; under another server the close waits its turn to be sent,
    for ``CLOSE_TIMEOUT_SECONDS`` at most.
    """
    code = close.code
    sink = frame_sink(websocket.scope)
    if sink is not None:
        sink.flush()  # what the room already handed over goes out before the close frame
        sink.abort_unless_closed_in(CLOSE_TIMEOUT_SECONDS)
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await websocket.close(code, close.reason)
    except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
        log.debug("socket closed before its close frame went out (code %d)", code)


def _too_big(text: str | None, data: bytes | None, limit: int) -> bool:
    """Backstop for servers started without ``ws_max_size`` (plain ``uvicorn roomchat…``)."""
    if data is not None:
        return len(data) > limit
    if text is None or len(text) * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
        return False
    return len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit
