"""How the probe and attacker processes talk to ``python -m bench.attack``.

Each reads one JSON spec line on stdin, sets up (logins, sockets), prints
``{"ready": true}``, waits for ``{"go": T}`` on stdin (T on the machine-wide monotonic
clock, so both processes start the same instant), runs until ``T + seconds`` and prints
one JSON line of figures. Anything else goes to stderr. SIGTERM ends a run early
(the harness sends it when the server's RSS passes ``--rss-cap-mib``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

#: ``run(spec, ready, stop)``: set up, ``start = await ready()``, run until the deadline
#: or ``stop`` is set, return the figures.
Run = Callable[
    [dict[str, Any], Callable[[], Awaitable[float]], asyncio.Event], Awaitable[dict[str, Any]]
]


def main(run: Run) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(sys.stdin.readline())
    result = uvloop.run(_main(run, spec))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def _main(run: Run, spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def ready() -> float:
        sys.stdout.write(json.dumps({"ready": True}) + "\n")
        sys.stdout.flush()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        start = float(json.loads(line)["go"])
        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return start

    return await run(spec, ready, stop)


async def until(deadline: float, stop: asyncio.Event) -> None:
    """Sleep until ``deadline`` (monotonic) or until ``stop`` is set."""
    delay = deadline - time.monotonic()
    if delay > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
