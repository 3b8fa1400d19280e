"""The room manager: membership. Who is in which room on this worker, their presence
(announced on join, lingering after leave), and one ``RoomListener`` per room with
sockets here.

Every event a room receives comes through the broker, even in one process, so one worker
behaves exactly like many: the writer (``realtime.writer``) stores a message, then
publishes it; the room's listener (``realtime.listener``) hands each event, in order, to
each local socket's bounded outbox. No socket can hold up the others: a full outbox drops
that socket. When the broker comes back after being away, every room here is told who is
online afresh (``_tell_who_is_online``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.broker import Broker, BrokerUnavailableError, Presence
from roomchat.realtime.connection import Connection
from roomchat.realtime.keyedlock import KeyedLock
from roomchat.realtime.listener import RoomListener
from roomchat.realtime.replay import Replay, replay
from roomchat.realtime.tasks import spawn
from roomchat.store.messages import MessageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Lingering:
    """The presence of a user's last socket in a room here, kept until ``task`` ends it."""

    connection_id: str
    task: asyncio.Task[None]


class RoomManager:
    def __init__(
        self,
        *,
        broker: Broker,
        presence: Presence,
        store: MessageStore,
        metrics: Metrics,
        linger: float = 0.0,
    ) -> None:
        metrics.watch(self.local_counts)
        self._metrics = metrics
        self._broker = broker
        self._presence = presence
        self._store = store
        self._local: dict[str, set[Connection]] = {}
        self._listeners: dict[str, RoomListener] = {}
        self._membership = KeyedLock()
        self._linger = linger
        #: (room, user) -> the presence a user's last socket here left, kept a moment
        self._lingering: dict[tuple[str, str], _Lingering] = {}
        self._leaving: set[asyncio.Task[None]] = set()
        self._newest_lookups: dict[str, asyncio.Future[int]] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._refresh_due = False
        self._closing = False
        broker.on_resubscribed(self._resubscribed)

    # -- sockets per user -------------------------------------------------------------

    async def claim_socket(self, user: str, limit: int) -> bool:
        """Count a socket of ``user`` about to open; False when they already have ``limit``
        (on every worker). Each claim is released with ``release_socket``."""
        return await self._presence.claim_socket(user, limit)

    async def release_socket(self, user: str) -> None:
        await self._presence.release_socket(user)

    # -- membership -------------------------------------------------------------------

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
            task = spawn(self._linger_then_leave(room, user, connection.id), name="roomchat-leave")
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
            members = self._local.setdefault(room, set())
            listener = self._listeners.get(room)
            if listener is None or listener.failed:
                listener = RoomListener(
                    room,
                    members=members,
                    broker=self._broker,
                    store=self._store,
                    metrics=self._metrics,
                )
                self._listeners[room] = listener
                try:
                    await listener.start()
                except BaseException:
                    if not members:  # no room here after all
                        self._local.pop(room, None)
                        self._listeners.pop(room, None)
                        await listener.stop()
                    raise
            members.add(connection)

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
                await listener.stop()

    def _delivered_up_to(self, room: str) -> int | None:
        """The newest id the room's listener here has delivered (None: no listener)."""
        listener = self._listeners.get(room)
        return None if listener is None else listener.delivered_up_to

    def local_counts(self) -> tuple[int, int, int]:
        """Sockets, rooms and members (users per room, summed) in this process."""
        sockets = sum(len(connections) for connections in self._local.values())
        members = sum(len({c.user for c in connections}) for connections in self._local.values())
        return sockets, len(self._local), members

    # -- for handshakes and joining sockets -------------------------------------------

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
        delivered = self._delivered_up_to(room)
        if delivered is not None and delivered >= message_id:
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
        """For a joining socket (already attached): its history frame's messages
        (``realtime.replay``), up to where its room's listener has delivered."""
        known = self._delivered_up_to(room)
        if known is None:
            known = await self._store.latest_message_id(room=room)
        return await replay(
            self._store, room, known=known, since=since, limit=limit, max_chars=max_chars
        )

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

    # -- passing events ---------------------------------------------------------------

    async def typing(self, room: str, user: str) -> None:
        await self._announce(room, events.typing_event(room, user))

    async def _announce(self, room: str, event: str) -> None:
        """Publish a passing event (join, leave, typing): lost, not fatal, while away."""
        try:
            await self._broker.publish(room, events.room_payload(event))
        except BrokerUnavailableError as exc:
            log.info("event not published: %s", exc)

    # -- after the broker was away --------------------------------------------------

    def _resubscribed(self) -> None:
        """Every room is subscribed again: refresh presence, one refresh at a time (a
        reconnect during one runs another after it)."""
        self._refresh_due = True
        if self._refreshing is None and not self._closing:
            self._refreshing = spawn(self._refresh_presence(), name="roomchat-presence-refresh")

    async def _refresh_presence(self) -> None:
        try:
            while self._refresh_due and not self._closing:
                self._refresh_due = False
                await self._tell_who_is_online()
        finally:
            self._refreshing = None

    async def _tell_who_is_online(self) -> None:
        """Write this worker's presence again, then send each room's sockets here a fresh
        ``presence`` frame (the one a joining socket gets), read from the global set.

        The joins and leaves published while this worker was unsubscribed are lost, and a
        user who left during an outage may never be announced at all (Redis restarted
        empty; the rewrite just omits them). Why every order converges anyway, for worker B
        here and a change to a room's members made by any worker A (A writes it to Redis,
        then publishes it): B reads after the room's subscription is confirmed again, and
        its listener routes nothing between ``hold`` and the frame. If A published after
        that confirmation, B gets the event, in publish order, after the frame (or before
        it: then it came before the read, which includes the write). If A published
        before, it wrote before too, so the read includes it. So each user ends as their
        last change says, whether A rewrote its presence before B resubscribed or after
        (its joins then reach B), and no rewrite's announcements need to wait for other
        workers' subscriptions. ``recover`` waits for the rewrites (B's own, then those of
        the workers B knew) only so that the frame is whole at once: a frame read before A
        rewrote would show A's members leaving, until A's joins came.
        """
        try:
            await self._presence.recover()
        except BrokerUnavailableError as exc:  # away again: its next return comes back here
            log.info("presence not refreshed: %s", exc)
            return
        # Not one still subscribing: its sockets' own presence frames come after that.
        listeners = [listener for listener in self._listeners.values() if listener.subscribed]
        for listener in listeners:
            listener.hold()
        members: dict[str, list[str]] | None = None
        try:
            members = await self._presence.members_of([listener.room for listener in listeners])
        except BrokerUnavailableError as exc:
            log.info("presence not refreshed: %s", exc)
        finally:
            for listener in listeners:
                room = listener.room
                listener.release(
                    None if members is None else events.presence_event(room, members[room])
                )

    # -- accounts (accounts/watch.py) -------------------------------------------------

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
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        listeners = list(self._listeners.values())
        self._listeners.clear()
        await asyncio.gather(*(listener.stop() for listener in listeners))
