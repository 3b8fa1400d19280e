"""What a scenario gets in the load process: the server to hit, and its parameters."""

from __future__ import annotations

import asyncio
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
    auth: bool = field(init=False)

    def __post_init__(self) -> None:
        self.auth = self.target == "roomchat"

    def connector(self, concurrency: int = 100) -> Connector:
        return Connector(
            ws_url=self.ws_url, auth=self.auth, secret=self.secret, concurrency=concurrency
        )

    def rss(self) -> int:
        return rss_bytes(self.server_pid)

    def server_cpu(self) -> CpuMeter:
        return CpuMeter(self.server_pid, self.server_core)


class LoadCpu:
    """CPU used by this (load) process over a window, as a share of its one core."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def share(self) -> float:
        return (time.process_time() - self._cpu) / max(1e-9, time.monotonic() - self._wall)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


__all__ = ["Context", "LoadCpu", "cpu_seconds", "sleep_until"]
