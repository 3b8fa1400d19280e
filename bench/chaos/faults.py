"""The faults of issue 15, each injected into a running deployment and ended.

Each fault is a coroutine that returns when the fault is over (the moment recovery is
timed from) and says what it did. An instant fault (``kill -9``) ends as it happens.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.chaos.deployment import Deployment, Server

FREEZE_S = 15.0  # a worker stopped (SIGSTOP) this long, as in the issue
REDIS_DOWN_S = 3.0  # Redis killed, then started again (empty: no persistence) after this
REDIS_FREEZE_S = 10.0
POSTGRES_DOWN_S = 10.0  # as in the issue


@dataclass
class Target:
    """What a fault may act on: the deployment and its servers, and which worker of ``c``
    holds the most of the harness's sockets (``kill -9`` picks it)."""

    deployment: Deployment
    servers: dict[str, Server]
    busiest_worker_of_c: Callable[[], int | None]
    #: Called in the fault's middle: one user leaves the room then, another comes in.
    midway: Callable[[], None]

    async def hold(self, seconds: float) -> None:
        """Let the fault last ``seconds``, with ``midway`` half-way through."""
        await asyncio.sleep(seconds / 2)
        self.midway()
        await asyncio.sleep(seconds / 2)

    async def freeze(self, pid: int, seconds: float) -> None:
        """SIGSTOP ``pid`` for ``seconds`` (``hold``), then SIGCONT. The deployment keeps
        it in ``frozen`` meanwhile, so that a harness that stops early wakes it."""
        self.deployment.frozen.append(pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            await self.hold(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
            self.deployment.frozen.remove(pid)


Fault = Callable[[Target], Awaitable[str]]


async def worker_kill(target: Target) -> str:
    """``kill -9`` one worker of the two-worker server; its supervisor starts another."""
    c = target.servers["c"]
    pid = target.busiest_worker_of_c() or c.worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    target.midway()
    return f"SIGKILL to worker {pid} of server c"


async def worker_freeze(target: Target) -> str:
    """SIGSTOP the single-worker server ``a`` for ``FREEZE_S``, then SIGCONT.

    A frozen worker of ``c`` would be killed by uvicorn's supervisor as hung (its health
    ping goes unanswered), which is the kill scenario again; ``a``'s pid is the worker.
    """
    (pid,) = target.servers["a"].worker_pids()
    await target.freeze(pid, FREEZE_S)
    return f"SIGSTOP to server a (pid {pid}) for {FREEZE_S:g} s, then SIGCONT"


async def redis_restart(target: Target) -> str:
    redis = target.deployment.redis
    await asyncio.to_thread(redis.stop)
    await target.hold(REDIS_DOWN_S)
    await asyncio.to_thread(redis.start)
    return f"Redis killed, started again {REDIS_DOWN_S:g} s later (empty)"


async def redis_freeze(target: Target) -> str:
    pid = target.deployment.redis_pid()
    await target.freeze(pid, REDIS_FREEZE_S)
    return f"SIGSTOP to Redis (pid {pid}) for {REDIS_FREEZE_S:g} s, then SIGCONT"


async def postgres_stop(target: Target) -> str:
    postgres = target.deployment.postgres
    await asyncio.to_thread(postgres.stop)  # immediate: connections drop
    await target.hold(POSTGRES_DOWN_S)
    await asyncio.to_thread(postgres.start)
    return f"PostgreSQL stopped (immediate) for {POSTGRES_DOWN_S:g} s, then started"


async def rolling_restart(target: Target) -> str:
    """SIGTERM each server in turn and start it again, the next once it is ready."""
    for number, server in enumerate(target.servers.values()):
        if number == 1:
            target.midway()
        await asyncio.to_thread(server.terminate)
        server.start()
        await server.wait_ready()
    return "SIGTERM to a, b, c in turn, each started again and ready before the next"


FAULTS: dict[str, Fault] = {
    "worker-kill": worker_kill,
    "worker-freeze": worker_freeze,
    "redis-restart": redis_restart,
    "redis-freeze": redis_freeze,
    "postgres-stop": postgres_stop,
    "rolling-restart": rolling_restart,
}
