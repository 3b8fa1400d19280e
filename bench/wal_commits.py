"""Single-message commits through the sqlite3 store at a steady rate: latency and WAL size.

``.venv/bin/python -m bench.wal_commits [--count 20000] [--rate 1000] [--size 100]``
commits one message at a time, paced at ``--rate`` per second (as the ``rooms`` scenario
does), times each ``add_messages_to_rooms`` from the event loop, and samples the size of
the ``-wal`` file every 50 ms. It prints latency percentiles, how many commits took over
2 and 5 ms, and the WAL file's largest and last size. Wall time, so other load on the
machine shows; repeat it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.store_cpu import bench_database
from roomchat import store
from roomchat.store import sqlite as sqlite_store
from roomchat.store.sqlite import SQLiteStore


def wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def sqlite_default() -> None:
    """No checkpointer: SQLite's own checkpoints in the committing thread (as before)."""
    sqlite_store.Checkpointer.start = lambda self: None  # type: ignore[method-assign]
    sqlite_store.Checkpointer.stop = lambda self: None  # type: ignore[method-assign]
    sqlite_store.SAFETY_CHECKPOINT_FRAMES = 1000
    sqlite_store.WAL_SIZE_LIMIT = -1


def time_inserts(times: list[float]) -> None:
    """Time each transaction in the store's thread, too (no thread hop, no loop)."""
    insert = sqlite_store._transact

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return insert(*args)
        finally:
            times.append(time.perf_counter() - t0)

    sqlite_store._transact = timed


def summary(seconds: list[float]) -> str:
    ms = sorted(x * 1e3 for x in seconds)
    cut = statistics.quantiles(ms, n=1000)
    return (
        f"p50 {cut[499]:.3f}  p99 {cut[989]:.3f}  p99.9 {cut[998]:.2f}  max {ms[-1]:.1f} ms; "
        f"> 2 ms: {sum(x > 2 for x in ms)}, > 5 ms: {sum(x > 5 for x in ms)}"
    )


async def run(count: int, rate: float, size: int) -> None:
    in_thread: list[float] = []
    time_inserts(in_thread)
    with tempfile.TemporaryDirectory(dir=os.environ.get("WAL_BENCH_DIR")) as directory:
        path = Path(directory) / "roomchat.db"
        await (await bench_database(path)).dispose()
        messages = await SQLiteStore.open(str(path))
        drafts = {"lobby": [store.Draft(1, "bench", "x" * size)]}
        sizes: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                sizes.append(wal_size(path))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.05)

        sampler = asyncio.create_task(sample())
        latencies: list[float] = []
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await messages.add_messages_to_rooms(drafts=drafts)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        done.set()
        await sampler
        cp = messages.checkpointer
        await messages.close()
        final = wal_size(path)
        print(
            f"checkpointer: {cp.passes} passes, {cp.catch_ups} caught up by the store's "
            f"thread, {cp.failures} failed"
        )

    print(
        f"{count} commits in {elapsed:.1f} s ({count / elapsed:.0f}/s), {size} B each; "
        f"WAL file max {max(sizes, default=0) / 2**20:.2f} MiB, at close {final / 2**20:.2f} MiB"
    )
    print(f"  awaited  {summary(latencies)}")
    print(f"  in thread {summary(in_thread)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--size", type=int, default=100, help="bytes of text per message")
    parser.add_argument(
        "--sqlite-default", action="store_true", help="no checkpointer (SQLite's own checkpoints)"
    )
    args = parser.parse_args()
    if args.sqlite_default:
        sqlite_default()
    asyncio.run(run(args.count, args.rate, args.size))


if __name__ == "__main__":
    main()
