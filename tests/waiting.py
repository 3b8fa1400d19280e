"""Waiting on a condition no event announces (a reconnect, a worker's heartbeat)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

TIMEOUT = 10.0
POLL_SECONDS = 0.05


async def eventually(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` (sync or async) until it is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(POLL_SECONDS)
