"""``Room``: one room's socket that reconnects by itself and yields each message once.

A background task owns the socket: it reads frames into a bounded queue (a consumer that
falls behind stops the reading, the server's queue for us overflows, it closes with 1013,
and we resume from the last id like after any other drop). A history frame with ``more``
(the server sends at most ``ROOMCHAT_RECOVERY_LIMIT`` messages in it) is followed by the
rest over HTTP, up to its ``latest``, before the live events. On a close in
``RECONNECT_CODES`` or a lost connection it waits (``Backoff``), reconnects with
``since=<last message id>`` and skips any id it already has, so across reconnects and
server restarts every message comes out once, in id order.

What it sends goes out once too: every message carries a ``client_id`` and is kept until
the server acknowledges it (``ack``). After a reconnect the room sends again what was not
acknowledged, and after a refusal worth retrying (``RETRIED_CODES``) it sends it again
after a pause; the server stores one key once, so a message sent twice is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from uuid import uuid4

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from roomchat.client.errors import (
    HandshakeRefusedError,
    HTTPError,
    MessageRefusedError,
    RoomClosedError,
    ServerUnavailableError,
)
from roomchat.client.models import Ack, Disconnected, ErrorEvent, Event, Message, parse_event

if TYPE_CHECKING:
    from roomchat.client.http import Client

log = logging.getLogger(__name__)

NORMAL, POLICY_VIOLATION = 1000, 1008
#: Going away, abnormal (no close frame), server error, restarting, we were too slow.
RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013})
#: The abuse close's reason: the room reconnects, but only after ``Client.abuse_pause``
#: (the server counts the user's frames: coming straight back would be closed again).
ABUSE_REASON = "too many messages"
#: Refusals that leave the message unstored and may pass: the room sends it again later.
RETRIED_CODES = frozenset({"rate_limited", "unavailable", "store_unavailable"})
#: How many settled sends ``stored()`` still remembers.
OUTCOMES_KEPT = 1024


@dataclass(eq=False, slots=True)
class _Unacked:
    frame: dict[str, Any]
    refusals: int = 0
    #: The socket it was last written to (a reconnect writes it to the new one).
    sent_on: ClientConnection | None = None


class Room:
    """Joined on ``async with``; ``async for event in room`` until the room ends."""

    def __init__(self, client: Client, name: str, *, since: int | None, queue_size: int) -> None:
        self._client = client
        self.name = name
        #: The id of the last message received: where a reconnect resumes.
        self.last_id = since
        self.reconnects = 0
        self._events: asyncio.Queue[Event] = asyncio.Queue(maxsize=queue_size)
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Messages sent and not yet acknowledged, in the order they were sent.
        self._unacked: dict[str, _Unacked] = {}
        #: What became of recent sends: the stored id, or the refusal.
        self._outcomes: OrderedDict[str, int | MessageRefusedError] = OrderedDict()
        #: Set (and replaced) whenever a send is acknowledged or refused.
        self._settled = asyncio.Event()
        #: Refused sends to try again, oldest first, one at a time (``_retry_refused``).
        self._to_retry: dict[str, None] = {}
        self._retrier: asyncio.Task[None] | None = None
        #: An event taken from the queue by a ``__anext__`` that was cancelled.
        self._held: list[Event] = []

    async def __aenter__(self) -> Room:
        try:
            ws, history = await self._open()
        except _Retry as exc:
            raise ServerUnavailableError(f"joining {self.name!r}: {exc}") from None
        self._ws = ws
        self._connected.set()  # send() works at once, before the task first runs
        self._task = asyncio.create_task(self._run(ws, history), name=f"roomchat-room-{self.name}")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave the room: stop reconnecting and close the socket."""
        if self._retrier is not None:
            self._retrier.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    # -- what the user calls ----------------------------------------------------------

    def __aiter__(self) -> Room:
        return self

    async def __anext__(self) -> Event:
        """The next event; ends when the room ends, raises why it ended if it failed."""
        task = self._running()
        if self._held:
            return self._held.pop()
        while self._events.empty():
            if task.done():
                self._raise_end(task)
            getter = asyncio.ensure_future(self._events.get())
            try:
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # The caller gave up waiting: leave no getter behind, and lose no event
                # it had already taken (the next call returns it).
                if getter.done() and not getter.cancelled():
                    self._held.append(getter.result())
                getter.cancel()
                raise
            if getter.done():
                return getter.result()
            getter.cancel()
        return self._events.get_nowait()

    async def send(self, text: str, *, client_id: str | None = None) -> str:
        """Send a message over the socket (waiting for a reconnect under way); return its
        ``client_id``: yours (1 to 64 printable characters), or a new random one.

        Exactly once: the room sends it again until the server acknowledges it (an ``Ack``
        event; ``await room.stored(client_id)`` waits for it), and the server stores one
        ``client_id`` once, within 24 hours.
        """
        client_id = client_id or uuid4().hex
        unacked = self._unacked.setdefault(
            client_id, _Unacked({"type": "message", "text": text, "client_id": client_id})
        )
        await self._write(unacked)
        return client_id

    @property
    def unacked(self) -> tuple[str, ...]:
        """The ``client_id`` of every message sent and not yet acknowledged, oldest first."""
        return tuple(self._unacked)

    async def stored(self, client_id: str) -> int:
        """Wait until the message sent as ``client_id`` is stored, and return its id.

        Raises ``MessageRefusedError`` if the server refused it for good, and why the room
        ended if it ended first."""
        task = self._running()
        while True:
            outcome = self._outcomes.get(client_id)
            if isinstance(outcome, MessageRefusedError):
                raise outcome
            if outcome is not None:
                return outcome
            if client_id not in self._unacked:
                raise KeyError(f"no message {client_id!r} was sent in {self.name!r}")
            if task.done():
                self._raise_end(task)
            await _first_of(self._settled.wait(), task)

    async def typing(self) -> None:
        """Tell the room you are typing (dropped while reconnecting: it is ephemeral)."""
        ws = self._ws
        if ws is not None and self._connected.is_set():
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "typing"}))

    async def _write(self, unacked: _Unacked) -> None:
        """Write a message to the socket once, waiting for a reconnect under way (which
        writes every message not acknowledged, this one too)."""
        task = self._running()
        while True:
            ws = self._ws
            if ws is not None and self._connected.is_set():
                if unacked.sent_on is ws:
                    return
                unacked.sent_on = ws
                try:
                    await ws.send(json.dumps(unacked.frame))
                    return
                except ConnectionClosed:
                    self._connected.clear()  # the reconnect writes it again
            if task.done():
                self._raise_end(task)
            await _first_of(self._connected.wait(), task)

    def _running(self) -> asyncio.Task[None]:
        if self._task is None:
            raise RuntimeError("join the room first: `async with client.room(name) as room:`")
        return self._task

    def _raise_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
        raise StopAsyncIteration

    # -- the socket's life ------------------------------------------------------------

    async def _run(self, ws: ClientConnection, history: dict[str, Any]) -> None:
        while True:
            self._ws = ws
            await self._send_unacked(ws)  # before anything new: the order they were sent
            self._connected.set()
            code, reason = await self._follow(ws, history)
            self._connected.clear()
            if code == NORMAL:
                return
            abused = code == POLICY_VIOLATION and reason.startswith(ABUSE_REASON)
            if (
                code == POLICY_VIOLATION
                and not abused
                and not (self._client.can_log_in and self._client.token_expiring())
            ):
                # An expired token and no credentials to log in with again.
                raise RoomClosedError(code, reason or "token expired or policy violation")
            if code not in RECONNECT_CODES and code != POLICY_VIOLATION:
                raise RoomClosedError(code, reason)
            log.info(
                "room %s closed with %d; reconnecting after id %s", self.name, code, self.last_id
            )
            await self._events.put(Disconnected(self.name, code, reason))
            if abused:
                # Sent too much too fast: what was not acknowledged goes again, slower.
                await asyncio.sleep(self._client.abuse_pause)
            ws, history = await self._reconnect()
            self.reconnects += 1

    async def _send_unacked(self, ws: ClientConnection) -> None:
        """Send again every message not acknowledged: each was lost, refused or stored
        unanswered; the server stores a ``client_id`` once, and acknowledges it again."""
        self._to_retry.clear()  # sent here, with the rest
        try:
            for unacked in list(self._unacked.values()):
                unacked.sent_on = ws
                await ws.send(json.dumps(unacked.frame))
        except ConnectionClosed:
            pass  # the socket's close is read next, and this runs again after reconnecting

    async def _follow(self, ws: ClientConnection, history: dict[str, Any]) -> tuple[int, str]:
        """Deliver the history (and what it left out), then the socket's events until it
        closes; return the close code and reason."""
        try:
            await self._recover(history)
        except _Retry as exc:
            log.info("room %s: recovery over HTTP failed (%s)", self.name, exc)
            await ws.close()
            return 1006, ""  # as if the connection dropped: reconnect with since=
        try:
            while True:
                await self._deliver(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                return 1006, ""
            return closed.rcvd.code, closed.rcvd.reason

    async def _recover(self, history: dict[str, Any]) -> None:
        """The history frame's messages; when it says ``more``, the rest up to its
        ``latest`` over HTTP (``after=``): live events continue after ``latest``."""
        for message in history["messages"]:
            await self._offer(Message.from_json(message))
        latest = int(history.get("latest") or 0)
        while history.get("more") and (self.last_id or 0) < latest:
            try:
                page = await self._client.messages(self.name, limit=200, after=self.last_id or 0)
            except (ServerUnavailableError, HTTPError) as exc:
                if isinstance(exc, HTTPError) and not _retryable(exc.status_code):
                    raise
                raise _Retry(str(exc)) from None
            if not page:
                return
            for message in page:
                if message.id <= latest:
                    await self._offer(message)
            if page[-1].id > latest:
                return

    async def _deliver(self, frame: dict[str, Any]) -> None:
        event = parse_event(frame, self.name)
        if isinstance(event, Ack):
            if self._unacked.pop(event.client_id, None) is None:
                return  # a second ack for a message sent twice
            self._settle(event.client_id, event.id)
        elif (
            isinstance(event, ErrorEvent)
            and event.client_id in self._unacked
            and not self._refused(event)
        ):
            return  # sent again later: not the user's concern yet
        if event is not None:
            await self._offer(event)

    def _refused(self, error: ErrorEvent) -> bool:
        """A send the server refused: retry it later (False) or give it up (True)."""
        assert error.client_id is not None
        unacked = self._unacked[error.client_id]
        unacked.refusals += 1
        if error.code in RETRIED_CODES and not self._client.backoff.exhausted(unacked.refusals):
            self._to_retry[error.client_id] = None
            if self._retrier is None or self._retrier.done():
                self._retrier = asyncio.create_task(self._retry_refused())
            self._notify()
            return False
        del self._unacked[error.client_id]
        self._to_retry.pop(error.client_id, None)
        refusal = MessageRefusedError(error.code, error.detail, client_id=error.client_id)
        self._settle(error.client_id, refusal)
        return True

    async def _retry_refused(self) -> None:
        """Send refused messages again, oldest first and one at a time, each once the one
        before is settled, backing off while they keep being refused: a database or Redis
        outage refuses everything sent, and sending it all again at once would only be
        refused for coming too fast (and close the socket as abuse)."""
        failures = 0
        while self._to_retry:
            await asyncio.sleep(self._client.backoff.delay(failures))
            client_id = next(iter(self._to_retry))
            unacked, ws = self._unacked.get(client_id), self._ws
            if unacked is None:
                del self._to_retry[client_id]  # acknowledged or given up meanwhile
                continue
            if ws is None or not self._connected.is_set():
                return  # the reconnect sends everything not acknowledged
            refusals = unacked.refusals
            unacked.sent_on = ws
            try:
                await ws.send(json.dumps(unacked.frame))
            except ConnectionClosed:
                return
            with contextlib.suppress(TimeoutError):  # no answer: send it again
                async with asyncio.timeout(self._client.timeout):
                    while client_id in self._unacked and unacked.refusals == refusals:
                        await self._settled.wait()
            if client_id in self._unacked:
                failures += 1  # refused again: it stays first in line
            else:
                failures = 0
                self._to_retry.pop(client_id, None)

    def _settle(self, client_id: str, outcome: int | MessageRefusedError) -> None:
        self._outcomes[client_id] = outcome
        while len(self._outcomes) > OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)
        self._notify()

    def _notify(self) -> None:
        self._settled.set()
        self._settled = asyncio.Event()

    async def _offer(self, event: Event) -> None:
        if isinstance(event, Message):
            if self.last_id is not None and event.id <= self.last_id:
                return  # already had it: replayed after a reconnect
            self.last_id = event.id
        await self._events.put(event)

    async def _reconnect(self) -> tuple[ClientConnection, dict[str, Any]]:
        backoff, failures = self._client.backoff, 0
        while True:
            try:
                return await self._open()  # logs in first when the token is expiring
            except (ServerUnavailableError, _Retry, HTTPError) as exc:
                if isinstance(exc, HTTPError) and not _retryable(exc.status_code):
                    raise  # a refused handshake or login: trying again would not help
                failures += 1
                if backoff.exhausted(failures):
                    raise ServerUnavailableError(
                        f"room {self.name!r}: gave up after {failures} reconnect attempts"
                    ) from exc
                delay = backoff.delay(failures - 1)
                log.info("room %s: reconnect failed (%s); next try in %.2fs", self.name, exc, delay)
                await asyncio.sleep(delay)

    async def _open(self) -> tuple[ClientConnection, dict[str, Any]]:
        """Connect and read the history frame; a refused token with credentials logs in once."""
        try:
            return await self._handshake(await self._client.fresh_token())
        except HandshakeRefusedError as refusal:
            if refusal.status_code != 401 or not self._client.can_log_in:
                raise
            token = await self._client.relogin(self._client.token)
        return await self._handshake(token)

    async def _handshake(self, token: str) -> tuple[ClientConnection, dict[str, Any]]:
        query = {"token": token} | (
            {"since": str(self.last_id)} if self.last_id is not None else {}
        )
        url = f"{self._client.ws_url}/ws/{quote(self.name, safe='')}?{urlencode(query)}"
        timeout = self._client.timeout
        try:
            # A history frame is as long as the server's send budget: take what it sends.
            ws = await connect(url, open_timeout=timeout, max_size=None)
        except InvalidStatus as exc:
            status = exc.response.status_code
            detail = _body_detail(exc.response.body)
            if _retryable(status):
                raise _Retry(f"HTTP {status}") from None
            raise HandshakeRefusedError(status, detail, what=f"joining {self.name!r}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            # Never chain the original: some carry the URL, and the URL carries the token.
            raise ServerUnavailableError(f"joining {self.name!r}: {type(exc).__name__}") from None
        try:
            async with asyncio.timeout(timeout):
                first = json.loads(await ws.recv())
        except (ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise _Retry(f"no history frame: {type(exc).__name__}") from None
        return ws, first


async def _first_of(waited: Coroutine[Any, Any, object], task: asyncio.Task[None]) -> None:
    """Wait until ``waited`` is done or the room's ``task`` ends; ``waited`` never outlives
    the call (not even when the caller is cancelled)."""
    future = asyncio.ensure_future(waited)
    try:
        await asyncio.wait({future, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        future.cancel()


def _retryable(status_code: int) -> bool:
    """Busy or failing servers (5xx), throttling (429), timeouts (408): try again later."""
    return status_code >= 500 or status_code in (408, 429)


class _Retry(Exception):
    """A failed attempt worth retrying after a pause (5xx answer, closed before history)."""


def _body_detail(body: bytes | bytearray | None) -> object:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return (body or b"").decode("utf-8", "replace")[:200]
    return data.get("detail", data) if isinstance(data, dict) else data
