"""fanout: one room, many receivers, one sender keeping a bounded window in flight.

The sender sends message n+1 only once every receiver has seen message n-W+1, so at most
W messages are in flight and no queue overflows. Deliveries/s and latency are taken over
a measured window after a warm-up; afterwards every receiver must have received every
message exactly once and in order (lost = 0).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench.client import Member, bench_text, close_all, reopen_dropped, settle
from bench.context import Context
from bench.stats import latency_summary_ms


async def run(ctx: Context) -> dict[str, Any]:
    receivers: int = ctx.params["receivers"]
    window: int = ctx.params["window"]
    size: int = ctx.params["text_bytes"]
    warmup: float = ctx.params["warmup_s"]
    duration: float = ctx.params["duration_s"]

    counts: list[int] = []  # receivers that have each message
    expected = [0] * receivers  # next seq each receiver should get
    received = [0] * receivers
    disorder = 0
    latencies: list[int] = []
    measuring = False
    deliveries = 0
    complete = -1  # every message up to this seq reached every receiver
    waiter: asyncio.Future[None] | None = None
    wait_for = 0

    def on_message(member: Member, _sender: int, seq: int, sent: int, now: int) -> None:
        nonlocal disorder, deliveries, complete
        index = member.index
        if seq != expected[index]:
            disorder += 1
        expected[index] = seq + 1
        received[index] += 1
        if measuring:
            deliveries += 1
            latencies.append(now - sent)
        counts[seq] += 1
        if counts[seq] == receivers and seq == complete + 1:
            while complete + 1 < len(counts) and counts[complete + 1] == receivers:
                complete += 1
            if waiter is not None and complete >= wait_for and not waiter.done():
                waiter.set_result(None)

    def ignore(_member: Member, _sender: int, _seq: int, _sent: int, _now: int) -> None:
        pass

    connector = ctx.connector()
    plan = [("fanout", f"bench{i:05d}") for i in range(receivers)]
    members = await connector.open_all(plan, on_message)
    sender = await connector.open("fanout", "bench-sender", 0, ignore)
    settled = await settle()  # roomchat: every join event delivered before the clock starts
    dropped = await reopen_dropped(connector, plan, members, on_message)

    async def until_complete(seq: int, timeout: float) -> bool:
        """Wait until every receiver has message ``seq``; False after ``timeout``."""
        nonlocal waiter, wait_for
        if complete >= seq:
            return True
        waiter, wait_for = asyncio.get_running_loop().create_future(), seq
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        return True

    gc.disable()
    seq = 0
    start = time.monotonic()
    measure_from, measure_to = start + warmup, start + warmup + duration
    meters = ctx.meters()
    rss_before = ctx.rss()
    while True:
        now = time.monotonic()
        if not measuring and now >= measure_from:
            measuring = True
            meters.start()
        elif now >= measure_to:
            break
        if seq >= window and not await until_complete(seq - window, 10):
            break  # a stall: reported as lost messages below
        counts.append(0)
        sender.send(bench_text(0, seq, size))
        seq += 1
    measuring = False
    elapsed = time.monotonic() - measure_from
    cpu = meters.figures()
    rss_after = ctx.rss()
    await until_complete(seq - 1, 10)
    gc.enable()
    lost = sum(seq - count for count in received)
    closed_early = sum(1 for m in members if m.closed.done())
    await close_all([*members, sender])
    return {
        "deliveries_per_s": deliveries / elapsed,
        **latency_summary_ms(latencies),
        "messages_sent": seq,
        "receivers": receivers,
        "window": window,
        "settle_s": settled,
        "dropped_while_joining": len(dropped),
        "dropped_codes": dropped,
        "lost": lost,
        "out_of_order": disorder,
        "closed_early": closed_early,
        **cpu,
        "server_rss_mib": rss_after / 2**20,
        "server_rss_growth_mib": (rss_after - rss_before) / 2**20,
    }
