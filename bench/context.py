"""What a scenario gets in the load process: the server to hit, and its parameters."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench.client import Connector
from bench.procstat import CpuMeter, cpu_seconds, rss_bytes


@dataclass
class Context:
    target: str  # "roomchat" or "baseline"
    ws_url: str
    port: int
    server_pid: int
    secret: str
    params: dict[str, Any]
    server_core: int | None = None
    load_core: int | None = None
    auth: bool = field(init=False)

    def __post_init__(self) -> None:
        self.auth = self.target == "roomchat"

    def connector(self, concurrency: int = 100) -> Connector:
        return Connector(
            ws_url=self.ws_url, auth=self.auth, secret=self.secret, concurrency=concurrency
        )

    def rss(self) -> int:
        return rss_bytes(self.server_pid)

    def meters(self) -> Meters:
        return Meters(self)


class Meters:
    """CPU over a measured window, of the server and of this (load) process, and their cores."""

    def __init__(self, ctx: Context) -> None:
        self._server = CpuMeter(ctx.server_pid, ctx.server_core)
        self._load = CpuMeter(os.getpid(), ctx.load_core)
        self._times = os.times()
        self._wall = time.monotonic()

    def start(self) -> None:
        now = self._wall = time.monotonic()
        self._server.start(now)
        self._load.start(now)
        self._times = os.times()

    def figures(self) -> dict[str, float | None]:
        now = time.monotonic()
        server, server_irq, server_others = self._server.shares(now)
        load, _, load_others = self._load.shares(now)
        times = os.times()
        wall = max(1e-9, now - self._wall)
        return {
            "server_cpu": server,
            "server_core_irq": server_irq,
            "server_core_stolen": server_others,
            "load_cpu": load,
            "load_cpu_system": (times.system - self._times.system) / wall,
            "load_core_stolen": load_others,
        }


async def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


__all__ = ["Context", "Meters", "cpu_seconds", "sleep_until"]
