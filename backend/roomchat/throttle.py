"""Login throttling: failed attempts counted per username and per client address.

Once either runs out, every attempt gets 429 with ``Retry-After`` (even one with the right
password, or brute force would simply continue) until the window refills. A registration
that hits a taken name counts as a failure for the address, so registering cannot be used
to probe for names faster than logging in can.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from roomchat.config import Settings
from roomchat.ratelimit import Clock, KeyedRateLimiter, LocalRateLimiter, SharedRateLimiter

#: Makes a shared limiter from (name, rate, burst): Redis-backed with several workers.
LimiterFactory = Callable[[str, float, int], SharedRateLimiter]


class LoginThrottle:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        shared: LimiterFactory | None = None,
    ) -> None:
        window = settings.login_window_seconds
        per_user, per_address = (
            settings.login_failures_per_user,
            settings.login_failures_per_address,
        )

        def limiter(name: str, burst: int) -> SharedRateLimiter:
            if shared is not None:
                return shared(name, burst / window, burst)
            return LocalRateLimiter(KeyedRateLimiter(rate=burst / window, burst=burst, clock=clock))

        self._users = limiter("login-user", per_user)
        self._addresses = limiter("login-address", per_address)

    async def retry_after(self, *, address: str, username: str | None = None) -> int:
        """Whole seconds to wait before trying again; 0 when an attempt may go ahead."""
        wait = await self._addresses.retry_after(address)
        if username is not None:
            wait = max(wait, await self._users.retry_after(username.lower()))
        return math.ceil(wait)

    async def failed(self, *, address: str, username: str | None = None) -> None:
        await self._addresses.allow(address)
        if username is not None:
            await self._users.allow(username.lower())


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits that span requests: login failures (messages: ``user_limits``)."""

    login_throttle: LoginThrottle
    close: Callable[[], Awaitable[None]]


def create_limits(settings: Settings) -> Limits:
    """Counted in Redis when it is configured (every worker counts together), else here."""
    if not settings.redis_url:

        async def nothing() -> None:
            return None

        return Limits(LoginThrottle(settings), nothing)
    from roomchat.realtime.broker.redis import redis_client
    from roomchat.redis_ratelimit import RedisRateLimiter

    client = redis_client(settings.redis_url)

    def shared(name: str, rate: float, burst: int) -> SharedRateLimiter:
        return RedisRateLimiter(
            client, prefix=settings.redis_prefix, name=name, rate=rate, burst=burst
        )

    return Limits(LoginThrottle(settings, shared=shared), client.aclose)
