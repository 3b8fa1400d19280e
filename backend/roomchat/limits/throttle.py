"""Login and registration throttling, counted per username and per client address.

Every login attempt is counted **before** its password is checked: it reserves one
failure for the username and one for the address, and gets them back only when the
password was right. So concurrent guesses are throttled exactly like sequential ones
(checking first and counting after the hash let every attempt in flight through). Once
either runs out, every attempt gets 429 with ``Retry-After`` (even one with the right
password, or brute force would simply continue) until the window refills. A
registration that hits a taken name counts as a failure for the address, so registering
cannot be used to probe for names faster than logging in can.

Registrations are counted per address too, each attempt before its password is hashed,
``ROOMCHAT_REGISTRATIONS_PER_ADDRESS`` per hour.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from roomchat.config import Settings
from roomchat.limits.backend import LimiterFactory, Limiters
from roomchat.limits.buckets import Clock

#: ``ROOMCHAT_REGISTRATIONS_PER_ADDRESS`` counts per this many seconds.
REGISTRATION_WINDOW_SECONDS = 3600.0


class LoginThrottle:
    def __init__(self, settings: Settings, limiters: LimiterFactory) -> None:
        window = settings.login_window_seconds
        per_user, per_address = (
            settings.login_failures_per_user,
            settings.login_failures_per_address,
        )
        self._users = limiters("login-user", per_user / window, per_user)
        self._addresses = limiters("login-address", per_address / window, per_address)

    async def reserve(self, *, address: str, username: str) -> int:
        """Count an attempt before its password is checked.

        0: it may go ahead (and counts as a failure unless ``refund`` follows);
        otherwise the whole seconds to wait, and nothing was counted.
        """
        wait = await self._addresses.acquire(address)
        if wait:
            return math.ceil(wait)
        wait = await self._users.acquire(_user_key(username))
        if wait:
            await self._addresses.refund(address)
            return math.ceil(wait)
        return 0

    async def refund(self, *, address: str, username: str) -> None:
        """The reserved attempt was no failure (the right password, or an error of ours)."""
        await self._users.refund(_user_key(username))
        await self._addresses.refund(address)

    async def retry_after(self, *, address: str, username: str | None = None) -> int:
        """Whole seconds to wait before trying again; 0 when an attempt may go ahead."""
        wait = await self._addresses.retry_after(address)
        if username is not None:
            wait = max(wait, await self._users.retry_after(_user_key(username)))
        return math.ceil(wait)

    async def failed(self, *, address: str, username: str | None = None) -> None:
        """Count a failure that no reservation paid for (a taken name at registration)."""
        await self._addresses.allow(address)
        if username is not None:
            await self._users.allow(_user_key(username))


def _user_key(username: str) -> str:
    """Names are compared ignoring case; none is longer than 32 characters, so a longer
    guess needs no key of its own (nor a megabyte-long one in Redis)."""
    return username.lower()[:33]


class RegistrationThrottle:
    """``ROOMCHAT_REGISTRATIONS_PER_ADDRESS`` attempts per hour, each before its hash."""

    def __init__(self, settings: Settings, limiters: LimiterFactory) -> None:
        burst = settings.registrations_per_address
        self._addresses = limiters("register-address", burst / REGISTRATION_WINDOW_SECONDS, burst)

    async def reserve(self, *, address: str) -> int:
        """0 when the attempt may go ahead (and counts); else the whole seconds to wait."""
        return math.ceil(await self._addresses.acquire(address))

    async def refund(self, *, address: str) -> None:
        """The attempt failed on our side (the database), not the client's: give it back."""
        await self._addresses.refund(address)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits that span requests: logins and registrations (messages: ``user_limits``)."""

    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
    close: Callable[[], Awaitable[None]]


def create_limits(settings: Settings, *, clock: Clock | None = None) -> Limits:
    """Counted in Redis when it is configured (every worker counts together), else here;
    ``clock``: see ``Limiters``."""
    limiters = Limiters(settings, clock=clock)
    return Limits(
        LoginThrottle(settings, limiters),
        RegistrationThrottle(settings, limiters),
        limiters.close,
    )
