"""CPU per store call on SQLite, through SQLAlchemy's engine and through the sqlite3 thread.

``.venv/bin/python -m bench.store_cpu`` prints, per call, the process's CPU time (every
thread) and the event loop thread's own, in µs: medians of a few rounds, one call at a
time. CPU time, not wall time, so that others' load on the machine matters less.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat import store
from roomchat.store.engine import create_engine, migrate
from roomchat.store.open import Store
from roomchat.store.sqlite import SQLiteStore
from roomchat.store.through_engine import EngineStore

ROUNDS = 5
NOT_A_HASH = "-"  # the bench user never logs in


async def cost(call: Callable[[], Awaitable[object]], count: int) -> tuple[float, float]:
    """Median µs per call of (process CPU, this thread's CPU)."""
    for _ in range(count // 10):  # warm up
        await call()
    process, loop = [], []
    for _ in range(ROUNDS):
        p0, t0 = time.process_time(), time.thread_time()
        for _ in range(count):
            await call()
        process.append((time.process_time() - p0) / count * 1e6)
        loop.append((time.thread_time() - t0) / count * 1e6)
    return statistics.median(process), statistics.median(loop)


async def measure(name: str, message_store: Store) -> None:
    def batch(size: int) -> Callable[[], Awaitable[object]]:
        drafts = {"lobby": [store.Draft(1, "bench", "x" * 100)] * size}
        return lambda: message_store.add_messages_to_rooms(drafts=drafts)

    calls = {
        "commit 1 message": (batch(1), 300),
        "commit 10 messages": (batch(10), 100),
        "find_users": (lambda: message_store.find_users(usernames=["BENCH"]), 300),
        "latest_message_id": (lambda: message_store.latest_message_id(room="lobby"), 300),
        "list_messages (50)": (lambda: message_store.list_messages(room="lobby", limit=50), 100),
    }
    for label, (call, count) in calls.items():
        process, loop = await cost(call, count)
        print(f"{name:9} {label:20} {process:7.0f} µs CPU  ({loop:5.0f} µs on the loop)")


async def bench_database(path: Path) -> AsyncEngine:
    """A migrated SQLite file at ``path`` with the one user the benchmarks write as."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await EngineStore(engine).create_user(username="bench", password_hash=NOT_A_HASH)
    return engine


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "roomchat.db"
        engine = await bench_database(path)
        await measure("engine", EngineStore(engine))
        fast = await SQLiteStore.open(str(path))
        await measure("sqlite3", fast)
        await fast.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
