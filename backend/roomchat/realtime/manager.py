"""The room manager: which sockets are in which room, presence, and routing events.

Every event a room receives comes through the broker, even in one process, so one worker
behaves exactly like many: ``post`` stores a message, then publishes it; a listener per
room (subscribed while the room has local sockets) hands each event to each local
socket's bounded queue. No socket can hold up the others: a full queue drops that socket.

Order and completeness come from the store, not from the broker: a room's messages are
stored one batch at a time in id order (on every worker), each published with the id of
the message before it. A listener delivers ids ascending only; when a message arrives
whose predecessor it has not delivered (published late by another worker, or lost while
Redis was away), or the broker reports a gap, it first fetches what it missed from the
store. So every member on every worker sees the same messages in the same order, and a
reconnect with ``since=`` stays exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.broker import Broker, BrokerUnavailableError, Gap, Presence
from roomchat.realtime.connection import Connection, Outgoing
from roomchat.realtime.keyedlock import KeyedLock
from roomchat.realtime.writer import MessageWriter
from roomchat.store.messages import MessageStore
from roomchat.store.schema import Message

log = logging.getLogger(__name__)


#: Most messages a listener fetches to fill a gap; past that its sockets reconnect (1012).
CATCH_UP_LIMIT = 1000


#: Messages a history replay reads from the store at a time.
REPLAY_PAGE = 100


@dataclass(frozen=True, slots=True)
class Replay:
    """A joining socket's history frame: its messages, encoded, and where live events
    take over (``latest``); ``more``: recovery left out messages up to ``latest``."""

    messages: list[str]
    latest: int
    more: bool


@dataclass(frozen=True, slots=True)
class _Lingering:
    """The presence of a user's last socket in a room here, kept until ``task`` ends it."""

    connection_id: str
    task: asyncio.Task[None]


@dataclass(eq=False)
class _Cursor:
    """The newest message id a room's listener has delivered."""

    last: int


class RoomManager:
    def __init__(
        self,
        *,
        broker: Broker,
        presence: Presence,
        store: MessageStore,
        metrics: Metrics | None = None,
        linger: float = 0.0,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.metrics.watch(self.local_counts)
        self._broker = broker
        self._presence = presence
        self._store = store
        self._local: dict[str, set[Connection]] = {}
        self._listeners: dict[str, asyncio.Task[None]] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._membership = KeyedLock()
        self._linger = linger
        #: (room, user) -> the presence a user's last socket here left, kept a moment
        self._lingering: dict[tuple[str, str], _Lingering] = {}
        self._leaving: set[asyncio.Task[None]] = set()
        self._newest_lookups: dict[str, asyncio.Future[int]] = {}
        self._closing = False
        self._writer = MessageWriter(broker=broker, store=store, metrics=self.metrics)

    # -- membership -------------------------------------------------------------------

    async def claim_socket(self, user: str, limit: int) -> bool:
        """Count a socket of ``user`` about to open; False when they already have ``limit``
        (on every worker). Each claim is released with ``release_socket``."""
        return await self._presence.claim_socket(user, limit)

    async def release_socket(self, user: str) -> None:
        await self._presence.release_socket(user)

    @asynccontextmanager
    async def join(self, connection: Connection) -> AsyncIterator[None]:
        """Membership for the duration of the block: events flow into the queue from entry.

        A user's ``leave`` waits ``linger`` seconds after their last socket here closes,
        and does not come at all if they are back by then (on any worker): a user who
        reconnects, reloads the page, or opens and closes sockets in a loop, is not
        announced to every member each time. Their presence stays for that moment, so
        ``members`` and the events agree.
        """
        room, user = connection.room, connection.user
        await self._attach(connection)
        try:
            first = await self._presence.add(room, user, connection.id)
            lingering = self._lingering.pop((room, user), None)
            if lingering is not None:  # back in time: the presence it left goes quietly
                lingering.task.cancel()
                await self._presence.remove(room, user, lingering.connection_id)
            if first:
                await self._announce(room, events.join_event(room, user))
            yield
        finally:
            await self._detach(connection)
            await self._leave(connection)

    async def _leave(self, connection: Connection) -> None:
        room, user = connection.room, connection.user
        others_here = any(c.user == user for c in self._local.get(room, ()))
        linger = self._linger > 0 and not self._closing
        if linger and not others_here and (room, user) not in self._lingering:
            task = asyncio.create_task(self._linger_then_leave(room, user, connection.id))
            self._lingering[(room, user)] = _Lingering(connection.id, task)
            self._leaving.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._leaving.discard)
        elif await self._presence.remove(room, user, connection.id):
            await self._announce(room, events.leave_event(room, user))

    async def _linger_then_leave(self, room: str, user: str, connection_id: str) -> None:
        await asyncio.sleep(self._linger)
        lingering = self._lingering.get((room, user))
        if lingering is None or lingering.connection_id != connection_id:
            return
        del self._lingering[(room, user)]
        if await self._presence.remove(room, user, connection_id):
            await self._announce(room, events.leave_event(room, user))

    async def _attach(self, connection: Connection) -> None:
        room = connection.room
        async with self._membership.hold(room):
            if room not in self._listeners:
                subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._listeners[room] = asyncio.create_task(
                    self._listen(room, subscribed), name=f"roomchat-listener-{room}"
                )
                await subscribed
            self._local.setdefault(room, set()).add(connection)

    async def _detach(self, connection: Connection) -> None:
        room = connection.room
        async with self._membership.hold(room):
            members = self._local.get(room, set())
            members.discard(connection)
            if members:
                return
            self._local.pop(room, None)
            listener = self._listeners.pop(room, None)
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, room: str, subscribed: asyncio.Future[None]) -> None:
        try:
            async with self._broker.subscribe(room) as subscription:
                cursor = _Cursor(await self._store.latest_message_id(room=room))
                self._cursors[room] = cursor
                subscribed.set_result(None)
                async for payload in subscription:
                    if isinstance(payload, Gap):
                        await self._catch_up(room, cursor)
                    else:
                        await self._route(room, cursor, payload)
        except asyncio.CancelledError:
            self._cursors.pop(room, None)
            raise
        except Exception as exc:
            # No listener dies silently: its sockets close with 1011 and reconnect.
            log.exception("room listener failed; closing its sockets", extra={"room": room})
            self.metrics.backend_errors.labels("listener").inc()
            if not subscribed.done():
                subscribed.set_exception(exc)
            self._listeners.pop(room, None)
            self._cursors.pop(room, None)
            self._drop_all(room, closecodes.INTERNAL_ERROR)

    async def _route(self, room: str, cursor: _Cursor, payload: str) -> None:
        previous_id, frame = events.unwrap(payload)
        if previous_id is None:
            self._fan_out(room, frame)
            return
        message_id = events.message_id(frame)
        if message_id is None or message_id <= cursor.last:
            return  # already delivered: published late, or fetched in a catch-up
        if previous_id > cursor.last:
            await self._catch_up(room, cursor)  # the one before it never came: fetch it
            if message_id <= cursor.last:
                return
        self._fan_out(room, frame)
        cursor.last = message_id

    async def _catch_up(self, room: str, cursor: _Cursor) -> None:
        """Deliver from the store what this room's sockets may have missed."""
        missed = await self._store.list_messages(room=room, after=cursor.last, limit=CATCH_UP_LIMIT)
        if len(missed) == CATCH_UP_LIMIT:
            # Too much for the sockets' queues: let each reconnect with since=.
            cursor.last = await self._store.latest_message_id(room=room)
            log.warning("room %s missed over %d messages; reconnecting it", room, len(missed))
            self._drop_all(room, closecodes.SERVICE_RESTART)
            return
        for message in missed:
            self._fan_out(room, events.message_event(message))
            cursor.last = message.id

    def _fan_out(self, room: str, frame: str) -> None:
        item = Outgoing.of(frame)  # built once, shared by every socket
        sent = 0
        for connection in tuple(self._local.get(room, ())):
            sent += connection.offer(item)
        if item.message_id is not None:
            self.metrics.delivered(sent, time.monotonic())

    def _drop_all(self, room: str, code: int) -> None:
        for connection in tuple(self._local.get(room, ())):
            connection.drop(code)

    def local_counts(self) -> tuple[int, int, int]:
        """Sockets, rooms and members (users per room, summed) in this process."""
        sockets = sum(len(connections) for connections in self._local.values())
        members = sum(len({c.user for c in connections}) for connections in self._local.values())
        return sockets, len(self._local), members

    async def members(self, room: str) -> list[str]:
        return await self._presence.members(room)

    async def is_new(self, room: str) -> bool:
        """No messages and no members: a join or a post now creates the room. Asked in
        order of cost (this worker's sockets, presence, the store); while presence cannot
        be read, a room with no messages counts as new."""
        if self._local.get(room):
            return False
        with contextlib.suppress(BrokerUnavailableError):
            if await self._presence.members(room):
                return False
        return await self._newest_stored(room) == 0

    async def has_issued(self, room: str, message_id: int) -> bool:
        """Whether the room's newest message id is at least ``message_id`` (a ``since``
        beyond it would mute the socket): the listener's cursor says so without a query."""
        cursor = self._cursors.get(room)
        if cursor is not None and cursor.last >= message_id:
            return True
        if await self._newest_stored(room) >= message_id:
            return True
        # A shared answer may predate the message; a refusal is worth a query of its own.
        return await self._store.latest_message_id(room=room) >= message_id

    async def _newest_stored(self, room: str) -> int:
        """The store's newest id for the room, for handshakes: those that ask at once (the
        first sockets of a room, all connecting together) wait on one query."""
        lookup = self._newest_lookups.get(room)
        if lookup is None:
            lookup = asyncio.ensure_future(self._store.latest_message_id(room=room))
            self._newest_lookups[room] = lookup
            lookup.add_done_callback(lambda _: self._newest_lookups.pop(room, None))
        # Shielded: a handshake given up on must not cancel the others' answer.
        return await asyncio.shield(lookup)

    async def replay(self, room: str, *, since: int | None, limit: int, max_chars: int) -> Replay:
        """For a joining socket (already attached): its history frame's messages.

        The last ``limit`` messages, or with ``since`` the first ``limit`` after it; in
        either case no more than about ``max_chars`` of JSON (always at least one
        message). They are read a page at a time and each is encoded once, so a big room
        is never in memory whole.

        ``latest`` is the newest message the socket knows of: the room listener's cursor,
        or the newest replayed if the store is ahead of it. Anything newer is on its way
        to the socket's outbox; when the listener says there is nothing to replay (an
        empty room, a client up to date), the store is not asked.
        """
        cursor = self._cursors.get(room)
        known = cursor.last if cursor else await self._store.latest_message_id(room=room)
        if known <= (since if since is not None else 0):
            return Replay([], max(known, since or 0), more=False)
        if since is None:
            messages, last = await self._newest(room, limit=limit, max_chars=max_chars)
            return Replay(messages, max(known, last), more=False)
        messages, last, stopped_short = await self._after(
            room, since, limit=limit, max_chars=max_chars
        )
        latest = max(known, last)
        return Replay(messages, latest, more=stopped_short and last < latest)

    async def _newest(self, room: str, *, limit: int, max_chars: int) -> tuple[list[str], int]:
        """The room's last messages, encoded, oldest first; and the newest id (0: none)."""
        newest_first: list[str] = []
        size, before, newest = 0, None, 0
        while len(newest_first) < limit:
            wanted = min(REPLAY_PAGE, limit - len(newest_first))
            page = await self._store.list_messages(room=room, limit=wanted, before=before)
            if page and not newest:
                newest = page[-1].id
            for message in reversed(page):
                encoded = events.message_json(message)
                if newest_first and size + len(encoded) > max_chars:
                    return newest_first[::-1], newest
                newest_first.append(encoded)
                size += len(encoded)
            if len(page) < wanted:
                break
            before = page[0].id
        return newest_first[::-1], newest

    async def _after(
        self, room: str, since: int, *, limit: int, max_chars: int
    ) -> tuple[list[str], int, bool]:
        """The first messages after ``since``, encoded; the last id among them (or
        ``since``); and whether messages after that were left out."""
        messages: list[str] = []
        size, last = 0, since
        while True:
            wanted = min(REPLAY_PAGE, limit - len(messages) + 1)  # one more: is there more?
            page = await self._store.list_messages(room=room, limit=wanted, after=last)
            for message in page:
                encoded = events.message_json(message)
                if len(messages) == limit or (messages and size + len(encoded) > max_chars):
                    return messages, last, True
                messages.append(encoded)
                size += len(encoded)
                last = message.id
            if len(page) < wanted:
                return messages, last, False

    async def members_for_socket(self, room: str) -> list[str]:
        """For a joining socket's presence frame: everyone, or, while the backend is away,
        this worker's own members (the others come as ``join`` once it is back)."""
        try:
            return await self._presence.members(room)
        except BrokerUnavailableError:
            return sorted({connection.user for connection in self._local.get(room, ())})

    async def online(self) -> dict[str, int]:
        return await self._presence.rooms()

    @property
    def broker_connected(self) -> bool:
        """False while the broker reconnects (readiness)."""
        return self._broker.connected

    # -- events -----------------------------------------------------------------------

    async def typing(self, room: str, user: str) -> None:
        await self._announce(room, events.typing_event(room, user))

    async def _announce(self, room: str, event: str) -> None:
        """Publish a passing event (join, leave, typing): lost, not fatal, while away."""
        try:
            await self._broker.publish(room, event)
        except BrokerUnavailableError as exc:
            log.info("event not published: %s", exc)

    def submit(self, room: str, draft: store.Draft) -> asyncio.Future[Message]:
        """Queue a message to store and publish; see ``MessageWriter.submit``."""
        return self._writer.submit(room, draft)

    async def post(self, room: str, draft: store.Draft) -> Message:
        """Store and publish a message; return it once stored and handed over."""
        return await self._writer.submit(room, draft)

    # -- accounts (account_watch.py) ---------------------------------------------------

    def local_users(self) -> set[str]:
        """The users with a socket in this process."""
        return {c.user for connections in self._local.values() for c in connections}

    def end_user(self, user: str, close: closecodes.Close) -> int:
        """End every socket of ``user`` (any case) in this process as ``close`` says: a
        deleted account's. Returns how many there were."""
        key, ended = user.lower(), 0
        for connections in self._local.values():
            for connection in connections:
                if connection.user.lower() == key:
                    connection.end(close)
                    ended += 1
        return ended

    async def close(self) -> None:
        """Close every socket as the server goes away, and stop the listeners (lingering
        presence goes with the presence backend, which announces what it removes)."""
        self._closing = True  # sockets ending from now on leave at once
        for connections in self._local.values():
            for connection in connections:
                connection.drop(closecodes.GOING_AWAY)
        for task in self._leaving:
            task.cancel()
        self._lingering.clear()
        await self._writer.close()
        listeners = list(self._listeners.values())
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
