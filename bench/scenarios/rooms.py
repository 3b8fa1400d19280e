"""rooms: many small rooms, every member sending at a steady rate (an open loop).

Each member sends ``rate`` messages a second on a fixed schedule with a random phase, so
the load does not wait for the server (no coordinated omission): a server that falls
behind shows it as latency. Every member receives every message of its room, its own
included; per sender they must arrive in order and none may be lost.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import random
import time
from typing import Any

from bench.client import Member, bench_text, close_all, reopen_dropped, settle
from bench.context import Context, sleep_until
from bench.stats import latency_summary_ms


async def run(ctx: Context) -> dict[str, Any]:
    rooms: int = ctx.params["rooms"]
    size: int = ctx.params["members"]
    rate: float = ctx.params["rate_per_member"]
    text_bytes: int = ctx.params["text_bytes"]
    warmup: float = ctx.params["warmup_s"]
    duration: float = ctx.params["duration_s"]
    total = rooms * size

    # Member i is in room i // size and is sender i % size there.
    expected = [[0] * size for _ in range(total)]
    received = [0] * total
    disorder = 0
    latencies: list[int] = []
    measuring = False
    deliveries = 0

    def on_message(member: Member, sender: int, seq: int, sent: int, now: int) -> None:
        nonlocal disorder, deliveries
        per_sender = expected[member.index]
        if seq != per_sender[sender]:
            disorder += 1
        per_sender[sender] = seq + 1
        received[member.index] += 1
        if measuring:
            deliveries += 1
            latencies.append(now - sent)

    plan = [(f"room{i // size:04d}", f"bench{i:05d}") for i in range(total)]
    connector = ctx.connector()
    members = await connector.open_all(plan, on_message)
    settled = await settle()
    dropped = await reopen_dropped(connector, plan, members, on_message)

    rng = random.Random(7)
    start = time.monotonic()
    schedule = [(start + rng.random() / rate, i) for i in range(total)]
    heapq.heapify(schedule)
    sent_by = [0] * total
    measure_from, measure_to = start + warmup, start + warmup + duration
    meters = ctx.meters()
    lag_ns: list[int] = []  # how late the load sent against its schedule (load health)
    gc.disable()
    while True:
        due, index = schedule[0]
        if due >= measure_to:
            break
        if not measuring and due >= measure_from:
            measuring = True
            meters.start()
        await sleep_until(due)
        lag_ns.append(int((time.monotonic() - due) * 1e9))
        members[index].send(bench_text(index % size, sent_by[index], text_bytes))
        sent_by[index] += 1
        heapq.heapreplace(schedule, (due + 1 / rate, index))
    elapsed = time.monotonic() - measure_from
    measuring = False
    cpu = meters.figures()
    expected_total = sum(sent_by) * size
    deadline = time.monotonic() + 10
    while sum(received) < expected_total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    gc.enable()
    closed_early = sum(1 for m in members if m.closed.done())
    await close_all(members)
    return {
        **latency_summary_ms(latencies),
        "deliveries_per_s": deliveries / elapsed,
        "messages_sent": sum(sent_by),
        "lost": expected_total - sum(received),
        "out_of_order": disorder,
        "closed_early": closed_early,
        "send_lag_p99_ms": latency_summary_ms(lag_ns)["p99_ms"],
        "settle_s": settled,
        "dropped_while_joining": len(dropped),
        "dropped_codes": dropped,
        **cpu,
        "server_rss_mib": ctx.rss() / 2**20,
    }
