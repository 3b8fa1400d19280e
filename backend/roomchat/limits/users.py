"""Limits per user, on every worker: messages (sockets and HTTP together), rooms created.

A user's budget is theirs, not their socket's: reconnecting, opening more sockets or
switching to HTTP draws on the same one. With Redis every worker counts together; while
Redis is away each worker counts alone (``RedisRateLimiter``'s fallback). A socket's
messages spend what its user is owed for time it was not read (``catchup``) first.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from roomchat.config import Settings
from roomchat.limits.backend import Limiters
from roomchat.limits.buckets import Clock, KeyedRateLimiter, SharedRateLimiter
from roomchat.limits.catchup import CatchUp
from roomchat.ops.loopwatch import LoopWatch

HOUR = 3600.0


class MessageRate:
    """``ROOMCHAT_MESSAGES_PER_SECOND`` and ``ROOMCHAT_MESSAGE_BURST`` per user.

    This worker's own bucket per user decides first, with no round trip: a flood is
    refused here, and only what it lets through (at most the rate's worth per user and
    worker) is counted again in the shared buckets, so a legitimate message pays one
    Redis call and a refused one none.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        shared: SharedRateLimiter | None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._local = KeyedRateLimiter(rate=rate, burst=burst, clock=clock)
        self._shared = shared

    async def allow(self, user_id: int) -> bool:
        """Take one message's worth of the user's budget; False when it is spent."""
        key = str(user_id)
        if not self._local.allow(key):
            return False
        return self._shared is None or await self._shared.allow(key)


@dataclass(frozen=True, slots=True)
class UserLimits:
    messages: MessageRate
    #: Messages owed for time the server did not read a user's sockets: spent first.
    catch_up: CatchUp
    #: Frames that did nothing, toward the abuse close (``realtime.strikes``): per worker.
    strikes: KeyedRateLimiter
    #: Rooms created by first use: ``ROOMCHAT_ROOMS_PER_USER`` an hour.
    new_rooms: SharedRateLimiter
    close: Callable[[], Awaitable[None]]


def create_user_limits(settings: Settings, *, clock: Clock | None = None) -> UserLimits:
    """Counted in Redis when it is configured (every worker counts together), else here.

    ``clock`` drives this worker's own buckets (tests move time with it). What the server
    did not read is timed on the real clock, by a ``LoopWatch`` on the running loop,
    which ``close`` stops."""
    rate, burst = settings.messages_per_second, settings.message_burst
    rooms = settings.rooms_per_user
    limiters = Limiters(settings, clock=clock)
    watch = LoopWatch()
    watch.start()

    async def close() -> None:
        watch.stop()
        await limiters.close()

    return UserLimits(
        MessageRate(
            rate=rate,
            burst=burst,
            shared=limiters("messages", rate, burst) if limiters.shared else None,
            clock=clock or time.monotonic,
        ),
        CatchUp(rate=rate, watch=watch),
        KeyedRateLimiter(rate=rate, burst=burst),
        limiters("new-rooms", rooms / HOUR, rooms),
        close,
    )
