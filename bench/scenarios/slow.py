"""slow: a room of healthy members plus one that stops reading, under big messages.

One sender sends ``text_bytes`` texts at ``rate`` a second (an open loop) to a room of
``receivers`` members and, with ``stuck``, one more member that completes its handshake
and then never reads (``bench.stuck``). Measured: the healthy members' latency per slice
of send time; when the server gives up on the stuck member (roomchat announces it with a
``leave`` event) and when its socket is gone from the server; the close code the stuck
member finds when it finally reads; and the server's memory over the run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import psutil

from bench.client import Member, bench_text, close_all, now_ns, reopen_dropped, settle
from bench.context import Context, sleep_until
from bench.stats import percentile
from bench.stuck import StuckClient

STUCK_USER = "bench-stuck"


async def run(ctx: Context) -> dict[str, Any]:
    receivers: int = ctx.params["receivers"]
    text_bytes: int = ctx.params["text_bytes"]
    rate: float = ctx.params["rate"]
    duration: float = ctx.params["duration_s"]
    slice_s: float = ctx.params["slice_s"]
    with_stuck: bool = ctx.params["stuck"]

    expected = [0] * receivers
    received = [0] * receivers
    disorder = 0
    samples: list[tuple[int, int]] = []  # (send time, latency) of every delivery
    left_ns: int | None = None

    def on_message(member: Member, _sender: int, seq: int, sent: int, now: int) -> None:
        nonlocal disorder
        if seq != expected[member.index]:
            disorder += 1
        expected[member.index] = seq + 1
        received[member.index] += 1
        samples.append((sent, now - sent))

    def on_other(member: Member, payload: bytes) -> None:
        nonlocal left_ns
        if left_ns is None and b'"leave"' in payload and STUCK_USER.encode() in payload:
            left_ns = now_ns()

    def ignore(_member: Member, _sender: int, _seq: int, _sent: int, _now: int) -> None:
        pass

    connector = ctx.connector()
    plan = [("slow", f"bench{i:05d}") for i in range(receivers)]
    members = await connector.open_all(plan, on_message, on_other)
    sender = await connector.open("slow", "bench-sender", 0, ignore)
    await settle()
    dropped = await reopen_dropped(connector, plan, members, on_message, on_other)
    stuck = None
    if with_stuck:
        stuck = StuckClient(ctx.port, connector.url("slow", STUCK_USER).split(ctx.ws_url, 1)[1])
        await stuck.open()
    settled = await settle()

    server = psutil.Process(ctx.server_pid)
    rss: list[tuple[float, int]] = []
    closed_ns: int | None = None

    async def watch(stop: asyncio.Event) -> None:
        """Sample the server's RSS, and notice when the stuck socket leaves the server."""
        nonlocal closed_ns
        while not stop.is_set():
            rss.append((time.monotonic(), ctx.rss()))
            if stuck is not None and closed_ns is None:
                ports = {
                    c.raddr.port
                    for c in server.net_connections("tcp")
                    if c.raddr and c.status == psutil.CONN_ESTABLISHED
                }
                if stuck.local_port not in ports:
                    closed_ns = now_ns()
            await asyncio.sleep(0.1)

    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(watch(stop_watching))
    await asyncio.sleep(0.3)
    rss_start = ctx.rss()
    meters = ctx.meters()
    gc.disable()
    start = time.monotonic()
    start_ns = now_ns()
    meters.start()
    count = int(duration * rate)
    send_times: list[int] = []
    for seq in range(count):
        await sleep_until(start + seq / rate)
        send_times.append(now_ns())
        sender.send(bench_text(0, seq, text_bytes))
    cpu = meters.figures()
    rss_end = ctx.rss()

    async def drained(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while sum(received) < count * receivers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return sum(received) >= count * receivers

    await drained(3)
    close_code: int | str | None = None
    read_again_ns = now_ns()
    if stuck is not None:
        # Reading again unblocks a server that waits on the stuck member (the baseline).
        close_code = await stuck.close_code(timeout=20, idle=2)
    await drained(10)
    stop_watching.set()
    await watcher
    gc.enable()
    lost = count * receivers - sum(received)
    await close_all([*members, sender])

    slices: list[float | None] = []
    slice_ns = int(slice_s * 1e9)
    by_slice: list[list[int]] = [[] for _ in range(int(duration / slice_s + 0.999))]
    for sent, latency in samples:
        index = min(len(by_slice) - 1, max(0, (sent - start_ns) // slice_ns))
        by_slice[index].append(latency)
    for values in by_slice:
        p99 = percentile(values, 0.99)
        slices.append(None if p99 is None else p99 / 1e6)
    all_latencies = [latency for _, latency in samples]
    p99_all = percentile(all_latencies, 0.99)
    rss_peak = max((value for t, value in rss if t >= start), default=rss_end)
    result: dict[str, Any] = {
        "p99_ms": None if p99_all is None else p99_all / 1e6,
        "p50_ms": (percentile(all_latencies, 0.5) or 0) / 1e6 if all_latencies else None,
        "slice_p99_ms": slices,
        "worst_slice_p99_ms": max((s for s in slices if s is not None), default=None),
        "messages_sent": count,
        "lost": lost,
        "out_of_order": disorder,
        "rss_growth_mib": (rss_peak - rss_start) / 2**20,
        "rss_start_mib": rss_start / 2**20,
        "rss_peak_mib": rss_peak / 2**20,
        "settle_s": settled,
        "dropped_while_joining": len(dropped),
        **cpu,
    }
    if stuck is not None:
        if closed_ns is not None and closed_ns >= read_again_ns:
            closed_ns = None  # the server held the socket until the stuck member read again
        dropped = None if left_ns is None else (left_ns - start_ns) / 1e9
        result |= {
            "stuck_dropped_after_s": dropped,
            "stuck_sent_before_drop": (
                None if left_ns is None else sum(1 for t in send_times if t < left_ns)
            ),
            "stuck_socket_gone_after_s": None
            if closed_ns is None
            else (closed_ns - start_ns) / 1e9,
            "stuck_close_after_drop_s": (
                None if closed_ns is None or left_ns is None else (closed_ns - left_ns) / 1e9
            ),
            "stuck_close_code": close_code,
            "stuck_read_again_after_s": (read_again_ns - start_ns) / 1e9,
        }
    return result
