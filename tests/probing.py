"""What other users see while an attack runs: a probe request's latency, and whether the
server still holds an attacker's connection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psutil

from tests.live import LiveServer

#: A probe slower than this means the event loop stalled. Generous: a quiet machine answers
#: /healthz in well under 100 ms, but the flooding client shares this process (and its
#: GIL) with the server, and CI's 2 cores may be busy; 1.0 s was once missed by 10 ms
#: under load. What it guards against, a server that reads the flood, stalls for the whole
#: 5 s until its cut-off.
STALL_SECONDS = 2.5


async def worst_probe_latency(server: LiveServer, until: asyncio.Future[Any]) -> float:
    """Request ``/healthz`` back to back until ``until`` is done; the slowest answer (s).

    Each probe opens a connection of its own, as a new visitor would (and no kept-alive
    connection can be closed under it).
    """
    worst = 0.0
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30, limits=fresh) as client:
        while not until.done():
            started = time.monotonic()
            response = await client.get("/healthz")
            assert response.status_code == 200
            worst = max(worst, time.monotonic() - started)
    return worst


def server_holds(server: LiveServer, client_port: int) -> bool:
    """Whether the server (in this process) still holds a connection from ``client_port``."""
    return any(
        c.laddr and c.raddr and c.laddr.port == server.port and c.raddr.port == client_port
        for c in psutil.Process().net_connections("tcp")
    )
