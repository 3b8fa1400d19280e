"""The Redis broker: rooms shared by every worker and host through Redis pub/sub.

One subscriber connection per process carries every room it has sockets in. It is ours,
not redis-py's ``PubSub``, because redis-py reconnects a ``PubSub`` silently, and a loss
must never be silent (see encode/broadcaster issue #144): when the connection drops, the
reader reconnects with backoff, subscribes again, and then gives every subscription a
``GAP`` so that the room manager fetches what it missed from the store. Once every channel
is confirmed again it calls the ``on_resubscribed`` callbacks: presence events published
meanwhile are lost too, and the room manager tells the rooms who is online afresh. A PING
every few seconds notices a connection that hangs instead of closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio.connection import AbstractConnection

from roomchat.ops.redis import REDIS_ERRORS, redis_client
from roomchat.realtime.broker.base import GAP, BrokerUnavailableError, Gap

log = logging.getLogger(__name__)


def room_channel(prefix: str, room: str) -> str:
    return f"{prefix}:room:{room}"


class Backoff:
    """Exponential delays with jitter, from ``first`` up to ``cap`` seconds."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self._first, self._cap, self._next = first, cap, first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        delay, self._next = self._next, min(self._cap, self._next * 2)
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not secrecy)


class RedisSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | Gap | BaseException] = asyncio.Queue()
        self.missed = False  # a GAP is due once the channel is subscribed again

    async def __aiter__(self) -> AsyncIterator[str | Gap]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item


class _Channel:
    def __init__(self) -> None:
        self.subscriptions: set[RedisSubscription] = set()
        self.confirmed = False  # SUBSCRIBE acknowledged on the current connection
        self.settled = asyncio.Event()  # confirmed, or that connection was lost

    def settle(self, *, confirmed: bool) -> None:
        self.confirmed = confirmed
        self.settled.set()
        if not confirmed:  # wake the waiters; the next connection starts unsettled
            self.settled = asyncio.Event()


class RedisBroker:
    """Payloads published on ``{prefix}:room:{channel}``, to every process subscribed."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ping_interval: float = 5.0,
        subscribe_timeout: float = 5.0,
    ) -> None:
        self._prefix = prefix
        self._commands = redis_client(url)
        self._ping_interval = ping_interval
        self._subscribe_timeout = subscribe_timeout
        self._channels: dict[str, _Channel] = {}
        self._connection: AbstractConnection | None = None
        self._send_lock = asyncio.Lock()
        # UNSUBSCRIBEs sent and not yet acknowledged, per channel: a "subscribe" reply
        # that comes before one of them belongs to an earlier subscription, not the new one.
        self._unsubscribing: dict[str, int] = {}
        # Channels subscribed again on this connection and not yet confirmed; None once
        # all are (and the ``on_resubscribed`` callbacks were called).
        self._resubscribing: set[str] | None = None
        self._on_resubscribed: list[Callable[[], None]] = []
        self._closing = False
        self._started = asyncio.Event()  # connected at least once
        self._reader = asyncio.create_task(self._run(), name="roomchat-redis-subscriber")

    # -- the Broker protocol ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def publish(self, channel: str, payload: str) -> None:
        try:
            await self._commands.publish(room_channel(self._prefix, channel), payload)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[RedisSubscription]:
        name = room_channel(self._prefix, channel)
        subscription = RedisSubscription()
        entry = self._channels.get(name)
        if entry is None:
            entry = self._channels[name] = _Channel()
            await self._send("SUBSCRIBE", name)
        entry.subscriptions.add(subscription)
        try:
            await self._confirm(entry, subscription)
            yield subscription
        finally:
            entry.subscriptions.discard(subscription)
            if not entry.subscriptions and self._channels.get(name) is entry:
                del self._channels[name]
                self._resubscribed(name)  # not waited for any more
                if await self._send("UNSUBSCRIBE", name):
                    self._unsubscribing[name] = self._unsubscribing.get(name, 0) + 1

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        self._on_resubscribed.append(callback)

    async def ping(self) -> None:
        try:
            await self._commands.ping()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc
        if not self.connected:
            raise BrokerUnavailableError("the Redis subscriber is reconnecting")

    async def close(self) -> None:
        self._closing = True  # redis-py may turn the cancel below into a TimeoutError
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._commands.aclose()

    # -- the subscriber connection ----------------------------------------------------

    async def _confirm(self, entry: _Channel, subscription: RedisSubscription) -> None:
        """Wait until the channel is subscribed; while Redis is away, owe a GAP instead."""
        if not self._started.is_set():  # just started: give the first connection a moment
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._subscribe_timeout):
                    await self._started.wait()
        if self._connection is not None:
            try:
                async with asyncio.timeout(self._subscribe_timeout):
                    await entry.settled.wait()
            except TimeoutError:
                log.warning("Redis did not confirm a subscription; reconnecting")
                connection, self._connection = self._connection, None
                if connection is not None:
                    await connection.disconnect(nowait=True)  # the reader sees it and reconnects
            if entry.confirmed:
                return
        subscription.missed = True

    async def _send(self, *command: str) -> bool:
        """Send on the subscriber connection, if up; a failure there is the reader's to see."""
        connection = self._connection
        if connection is None:
            return False
        try:
            async with self._send_lock:
                await connection.send_command(*command, check_health=False)
        except REDIS_ERRORS as exc:
            log.info("Redis subscriber command %s failed: %r", command[0], exc)
            return False
        return True

    async def _run(self) -> None:
        backoff = Backoff()
        try:
            while not self._closing:
                connection = self._commands.connection_pool.connection_class(
                    **(self._commands.connection_pool.connection_kwargs | {"socket_timeout": None})
                )
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]
                    backoff.reset()
                    await self._serve(connection)
                except* REDIS_ERRORS as group:
                    log.warning("Redis subscriber connection lost: %r", group.exceptions[0])
                finally:
                    self._lost()
                    await connection.disconnect(nowait=True)
                await asyncio.sleep(backoff.next())
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # No background task dies silently: every subscription raises, so the room
            # listeners fail loudly and close their sockets with 1011.
            log.exception("Redis subscriber crashed")
            for entry in self._channels.values():
                for subscription in entry.subscriptions:
                    subscription.queue.put_nowait(exc)
            raise

    def _lost(self) -> None:
        self._connection = None
        self._resubscribing = None
        self._unsubscribing.clear()
        for entry in self._channels.values():
            entry.settle(confirmed=False)
            for subscription in entry.subscriptions:
                subscription.missed = True

    async def _serve(self, connection: AbstractConnection) -> None:
        """Subscribe every channel again, then read until the connection fails."""
        self._connection = connection  # from here on, new channels are subscribed by _send
        self._resubscribing = set(self._channels)
        if self._channels:
            async with self._send_lock:
                await connection.send_command("SUBSCRIBE", *self._channels, check_health=False)
        else:
            self._resubscribed(None)
        self._started.set()
        log.info("Redis subscriber connected (%d rooms)", len(self._channels))
        alive = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._keepalive(connection, alive))
            while True:
                response: Any = await connection.read_response(disconnect_on_error=False)
                alive.set()
                self._dispatch(response)

    async def _keepalive(self, connection: AbstractConnection, alive: asyncio.Event) -> None:
        """PING now and then; no answer within two intervals means the connection hangs."""
        while True:
            alive.clear()
            async with self._send_lock:
                await connection.send_command("PING", check_health=False)
            try:
                async with asyncio.timeout(2 * self._ping_interval):
                    await alive.wait()
            except TimeoutError:
                raise TimeoutError("Redis did not answer a PING") from None
            await asyncio.sleep(self._ping_interval)

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) < 3:
            return  # PONG
        kind, name, data = response[0], response[1], response[2]
        if kind == "unsubscribe" and self._unsubscribing.get(name):
            self._unsubscribing[name] -= 1
            return
        entry = self._channels.get(name)
        if entry is None:
            return
        if kind == "message":
            for subscription in entry.subscriptions:
                subscription.queue.put_nowait(data)
        elif kind == "subscribe" and not self._unsubscribing.get(name):
            entry.settle(confirmed=True)
            for subscription in entry.subscriptions:
                if subscription.missed:
                    subscription.missed = False
                    subscription.queue.put_nowait(GAP)
            self._resubscribed(name)

    def _resubscribed(self, name: str | None) -> None:
        """``name`` is confirmed (or gone): once none is left, call ``on_resubscribed``."""
        pending = self._resubscribing
        if pending is None:
            return
        if name is not None:
            pending.discard(name)
        if pending:
            return
        self._resubscribing = None
        for callback in self._on_resubscribed:
            try:
                callback()
            except Exception:
                log.exception("an on_resubscribed callback failed")
