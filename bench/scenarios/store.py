"""store: many concurrent senders; messages stored per second.

Each sender is alone in its own room and keeps ``window`` messages in flight: it sends the
next one when the echo of an earlier one comes back. roomchat stores a message before it
delivers it, so an echo is a stored message; after the run the harness also counts the
rows in the database. The baseline stores nothing: its figure is the same loop without
storage, shown for scale only.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench.client import Member, bench_text, close_all, reopen_dropped, settle
from bench.context import Context


async def run(ctx: Context) -> dict[str, Any]:
    senders: int = ctx.params["senders"]
    window: int = ctx.params["window"]
    text_bytes: int = ctx.params["text_bytes"]
    warmup: float = ctx.params["warmup_s"]
    duration: float = ctx.params["duration_s"]

    sent = [0] * senders
    echoed = [0] * senders
    disorder = 0
    sending = False
    measuring = False
    in_window = 0
    members: list[Member] = []

    def on_message(member: Member, _sender: int, seq: int, _sent: int, _now: int) -> None:
        nonlocal disorder, in_window
        index = member.index
        if seq != echoed[index]:
            disorder += 1
        echoed[index] = seq + 1
        if measuring:
            in_window += 1
        if sending:
            member.send(bench_text(index, sent[index], text_bytes))
            sent[index] += 1

    plan = [(f"store{i:03d}", f"bench{i:05d}") for i in range(senders)]
    connector = ctx.connector()
    members = await connector.open_all(plan, on_message)
    settled = await settle()
    dropped = await reopen_dropped(connector, plan, members, on_message)

    gc.disable()
    sending = True
    for member in members:
        for _ in range(window):
            member.send(bench_text(member.index, sent[member.index], text_bytes))
            sent[member.index] += 1
    await asyncio.sleep(warmup)
    meters = ctx.meters()
    measuring = True
    start = time.monotonic()
    meters.start()
    await asyncio.sleep(duration)
    measuring = False
    elapsed = time.monotonic() - start
    sending = False
    cpu = meters.figures()
    deadline = time.monotonic() + 10
    while sum(echoed) < sum(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    gc.enable()
    closed_early = sum(1 for m in members if m.closed.done())
    await close_all(members)
    return {
        "stored_per_s": in_window / elapsed,
        "messages_sent": sum(sent),
        "messages_echoed": sum(echoed),
        "lost": sum(sent) - sum(echoed),
        "out_of_order": disorder,
        "closed_early": closed_early,
        "senders": senders,
        "window": window,
        "settle_s": settled,
        "dropped_while_joining": len(dropped),
        **cpu,
    }
