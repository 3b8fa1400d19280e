"""connect: open thousands of authenticated sockets; connects/s and memory per idle socket.

Sockets go to rooms of ``room_size`` (roomchat sends each room a join event per user), at
most ``concurrency`` handshakes at a time. A socket counts as connected once it is usable:
the upgrade is done and, for roomchat, its history and presence frames have arrived. RSS
per socket is the server's resident memory with every socket open and idle, less its RSS
before, over the number of sockets.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench.client import Member, close_all, settle
from bench.context import Context
from bench.stats import latency_summary_ms


def _ignore(_member: Member, _sender: int, _seq: int, _sent: int, _now: int) -> None:
    pass


async def run(ctx: Context) -> dict[str, Any]:
    sockets: int = ctx.params["sockets"]
    room_size: int = ctx.params["room_size"]
    concurrency: int = ctx.params["concurrency"]
    connector = ctx.connector(concurrency)
    plan = [(f"room{i // room_size:04d}", f"bench{i:05d}") for i in range(sockets)]
    urls = [connector.url(room, user) for room, user in plan]  # tokens minted before the clock

    # Warm up the server (imports, first queries) with a few sockets, then let it settle.
    warm = await asyncio.gather(
        *(connector.open("warmup", plan[i][1], i, _ignore) for i in range(min(20, sockets)))
    )
    await close_all(list(warm))
    await asyncio.sleep(1.0)
    gc.collect()
    rss_before = ctx.rss()

    failures = 0

    async def one(index: int) -> Member | None:
        nonlocal failures
        room, user = plan[index]
        try:
            return await connector.open(room, user, index, _ignore, url=urls[index])
        except Exception:
            failures += 1
            return None

    start = time.monotonic()
    meters = ctx.meters()
    meters.start()
    opened = await asyncio.gather(*(one(i) for i in range(sockets)))
    elapsed = time.monotonic() - start
    cpu = meters.figures()
    members = [m for m in opened if m is not None]
    times = [m.connect_ns for m in members]
    settled = await settle(quiet=1.0)
    await asyncio.sleep(1.0)
    rss_open = ctx.rss()
    open_now = sum(1 for m in members if not m.closed.done())
    started_close = time.monotonic()
    await close_all(members, timeout=30)
    return {
        "connects_per_s": len(members) / elapsed,
        "rss_per_socket_kib": (rss_open - rss_before) / max(1, len(members)) / 1024,
        "sockets": len(members),
        "failed": failures + (len(members) - open_now),
        **{f"connect_{k}": v for k, v in latency_summary_ms(times).items()},
        "server_rss_before_mib": rss_before / 2**20,
        "server_rss_open_mib": rss_open / 2**20,
        "settle_s": settled,
        "close_s": time.monotonic() - started_close,
        **cpu,
    }
