"""Login throttling: failed attempts counted per username and per client address.

Once either runs out, every attempt gets 429 with ``Retry-After`` (even one with the right
password, or brute force would simply continue) until the window refills. A registration
that hits a taken name counts as a failure for the address, so registering cannot be used
to probe for names faster than logging in can.
"""

from __future__ import annotations

import math
import time

from roomchat.config import Settings
from roomchat.ratelimit import Clock, KeyedRateLimiter


class LoginThrottle:
    def __init__(self, settings: Settings, *, clock: Clock = time.monotonic) -> None:
        window = settings.login_window_seconds
        per_user, per_address = (
            settings.login_failures_per_user,
            settings.login_failures_per_address,
        )
        self._users = KeyedRateLimiter(rate=per_user / window, burst=per_user, clock=clock)
        self._addresses = KeyedRateLimiter(
            rate=per_address / window, burst=per_address, clock=clock
        )

    def retry_after(self, *, address: str, username: str | None = None) -> int:
        """Whole seconds to wait before trying again; 0 when an attempt may go ahead."""
        wait = self._addresses.retry_after(address)
        if username is not None:
            wait = max(wait, self._users.retry_after(username.lower()))
        return math.ceil(wait)

    def failed(self, *, address: str, username: str | None = None) -> None:
        self._addresses.allow(address)
        if username is not None:
            self._users.allow(username.lower())
