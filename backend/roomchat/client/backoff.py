"""How long to wait before reconnecting: exponential, capped, with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt ``n`` (from 0) waits a random time in ``[0, min(maximum, initial * 2**n)]``.

    Full jitter spreads the reconnects of many clients after a server restart, so they do
    not all knock at once. ``attempts`` failed attempts in a row give up (None: never).
    """

    initial: float = 0.5
    maximum: float = 30.0
    attempts: int | None = None

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** min(attempt, 32))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not cryptography)

    def exhausted(self, failures: int) -> bool:
        return self.attempts is not None and failures >= self.attempts
