"""A room's ordered listener: the broker's payloads, in id order, to the room's sockets here.

One per room with sockets on this worker. Order and completeness come from the store, not
from the broker: a room's messages are stored one batch at a time in id order (on every
worker), each published with the id of the message before it. The listener delivers ids
ascending only; when a message arrives whose predecessor it has not delivered (published
late by another worker, or lost while Redis was away), or the broker reports a gap, it
first fetches what it missed from the store. So every member on every worker sees the
same messages in the same order, and a reconnect with ``since=`` stays exact.

More missed than ``catch_up_limit`` closes the room's sockets with 1012 (they reconnect
with ``since=``); a listener that fails closes them with 1011.

Presence is not in the store: after the broker was away, the room manager reads who is
online and hands each listener a fresh ``presence`` frame (``hold``, then ``release``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Protocol

from roomchat.ops.metrics import Metrics
from roomchat.realtime import closecodes, events
from roomchat.realtime.broker import Broker, Gap
from roomchat.realtime.connection import Connection, Outgoing
from roomchat.realtime.tasks import spawn
from roomchat.store.schema import Message

log = logging.getLogger(__name__)

#: Most messages a listener fetches to fill a gap; past that its sockets reconnect (1012).
CATCH_UP_LIMIT = 1000


class RoomHistory(Protocol):
    """What a listener reads of the store (``store.messages.MessageStore`` has it)."""

    async def latest_message_id(self, *, room: str) -> int: ...

    async def list_messages(
        self, *, room: str, limit: int, after: int | None = None
    ) -> list[Message]: ...


class RoomListener:
    """Subscribed from ``start`` to ``stop``; delivers to whoever is in ``members`` then
    (the membership's own set for the room, which it keeps up to date)."""

    def __init__(
        self,
        room: str,
        *,
        members: Collection[Connection],
        broker: Broker,
        store: RoomHistory,
        metrics: Metrics,
        catch_up_limit: int = CATCH_UP_LIMIT,
    ) -> None:
        self.room = room
        self._members = members
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._catch_up_limit = catch_up_limit
        #: The newest message id delivered; None until subscribed, and once failed.
        self.delivered_up_to: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._held: asyncio.Future[None] | None = None  # routing waits while it is pending

    @property
    def subscribed(self) -> bool:
        """Subscribed and delivering: from ``start`` until stopped or failed."""
        return self.delivered_up_to is not None

    @property
    def failed(self) -> bool:
        return self._task is not None and self._task.done() and not self._task.cancelled()

    async def start(self) -> None:
        """Subscribe; return once every payload published from now on will be delivered.
        Raises what kept it from subscribing (the sockets are closed with 1011 then)."""
        subscribed = asyncio.get_running_loop().create_future()
        self._task = spawn(self._listen(subscribed), name=f"roomchat-listener-{self.room}")
        await subscribed

    def hold(self) -> None:
        """Route no more payloads until ``release``: one taken now waits. (Routing a join,
        leave or typing event never awaits, so none is half-delivered.)"""
        if self._held is None:
            self._held = asyncio.get_running_loop().create_future()

    def release(self, frame: str | None) -> None:
        """Send ``frame`` (if any) to the room's sockets, then route again, in order."""
        held, self._held = self._held, None
        if frame is not None:
            self._fan_out(frame)
        if held is not None and not held.done():  # (cancelled with a stopped listener)
            held.set_result(None)

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.delivered_up_to = None

    async def _listen(self, subscribed: asyncio.Future[None]) -> None:
        try:
            async with self._broker.subscribe(self.room) as subscription:
                self.delivered_up_to = await self._store.latest_message_id(room=self.room)
                if not subscribed.done():  # (not if whoever started it gave up)
                    subscribed.set_result(None)
                async for payload in subscription:
                    if self._held is not None:
                        await self._held
                    if isinstance(payload, Gap):
                        await self._catch_up()
                    else:
                        await self._route(payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # No listener dies silently: its sockets close with 1011 and reconnect.
            log.exception("room listener failed; closing its sockets", extra={"room": self.room})
            self._metrics.backend_errors.labels("listener").inc()
            self.delivered_up_to = None
            if not subscribed.done():
                subscribed.set_exception(exc)
            self._drop_all(closecodes.INTERNAL_ERROR)

    async def _route(self, payload: str) -> None:
        previous_id, frame = events.read_room_payload(payload)
        if previous_id is None:  # join, leave, typing: passing, not ordered
            self._fan_out(frame)
            return
        message_id = events.message_id(frame)
        delivered = self._delivered()
        if message_id is None or message_id <= delivered:
            return  # already delivered: published late, or fetched in a catch-up
        if previous_id > delivered:
            await self._catch_up()  # the one before it never came: fetch it
            if message_id <= self._delivered():
                return
        self._fan_out(frame)
        self.delivered_up_to = message_id

    async def _catch_up(self) -> None:
        """Deliver from the store what this room's sockets may have missed."""
        limit = self._catch_up_limit
        missed = await self._store.list_messages(
            room=self.room, after=self._delivered(), limit=limit
        )
        if len(missed) == limit:
            # Too much for the sockets' queues: let each reconnect with since=.
            self.delivered_up_to = await self._store.latest_message_id(room=self.room)
            log.warning("room %s missed over %d messages; reconnecting it", self.room, limit)
            self._drop_all(closecodes.SERVICE_RESTART)
            return
        for message in missed:
            self._fan_out(events.message_event(message))
            self.delivered_up_to = message.id

    def _delivered(self) -> int:
        delivered = self.delivered_up_to
        assert delivered is not None, "routing before subscribing"
        return delivered

    def _fan_out(self, frame: str) -> None:
        item = Outgoing.of(frame)  # built once, shared by every socket
        sent = 0
        for connection in tuple(self._members):
            sent += connection.offer(item)
        if item.message_id is not None:
            self._metrics.delivered(sent, time.monotonic())

    def _drop_all(self, code: int) -> None:
        for connection in tuple(self._members):
            connection.drop(code)
