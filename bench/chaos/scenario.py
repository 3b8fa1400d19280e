"""One scenario: fresh servers, the people in the room, traffic, the fault, then the count.

Timeline (seconds from the start of traffic): senders go at 2.5/s each; at ``warmup``
the fault is injected, and half-way through it one user leaves and another joins; from
its end the prober posts a round on every server each 0.5 s until one has reached every
watcher; traffic goes on until ``seconds`` have passed and at least ``after`` since the
fault ended; then sending stops, the run waits (bounded) until every acknowledged message
is at every watcher and nothing has arrived for ``quiet_s``, and until the members agree;
then the database is read and everything is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from bench.chaos.clients import (
    HTTP_TIMEOUT_S,
    Churner,
    Clock,
    HTTPSender,
    Prober,
    Sender,
    SocketSender,
    Watcher,
)
from bench.chaos.counting import Recorded, count, presence_right
from bench.chaos.deployment import PASSWORD, Deployment, Server
from bench.chaos.faults import Fault, Target
from roomchat.client import Client, RoomchatError

SETUP_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
PLACEMENT_TRIES = 20


@dataclass(frozen=True)
class Timing:
    seconds: float = 20.0  # traffic lasts at least this long
    warmup: float = 5.0  # traffic before the fault
    after: float = 8.0  # traffic after the fault's end, at least
    quiet_s: float = 3.0  # nothing new arriving this long: the room is quiet
    quiet_limit_s: float = 30.0
    presence_limit_s: float = 15.0
    probe_limit_s: float = 60.0


def user_names() -> list[str]:
    """Every user a run needs: watchers, senders, comers and goers, probers."""
    names = ["w-a", "w-b", "w-c1", "w-c2", "c-a", "c-b"]
    for server in "abc":
        names += [f"s-{server}-ws", f"s-{server}-http", f"p-{server}"]
    return names


async def register(url: str, names: Iterable[str]) -> None:
    """Register the run's users once (the database outlives the scenarios)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for name in names:
            answer = await client.post(
                "/api/auth/register", json={"username": name, "password": PASSWORD}
            )
            if answer.status_code not in (201, 409):
                raise RuntimeError(f"registering {name}: HTTP {answer.status_code} {answer.text}")


async def bounded(condition: Callable[[], bool], limit_s: float, every_s: float = 0.1) -> float:
    """Wait until ``condition()`` holds or ``limit_s`` passes; return the seconds waited."""
    began = time.monotonic()
    while not condition() and time.monotonic() - began < limit_s:
        await asyncio.sleep(every_s)
    return time.monotonic() - began


async def within(awaitable: Awaitable[Any], limit_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(awaitable, limit_s)
    except TimeoutError:
        raise RuntimeError(f"{what}: not within {limit_s:g} s") from None


class Run:
    """The clients of one scenario and their tasks."""

    def __init__(self, servers: list[Server], room: str, clock: Clock) -> None:
        self.servers = {server.name: server for server in servers}
        self.room, self.clock = room, clock
        self.tasks: list[asyncio.Task[None]] = []
        self.watchers: list[Watcher] = []
        self.senders: list[Sender] = []
        self.churners: list[Churner] = []
        self.http_senders: list[asyncio.Task[None]] = []

    def spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self.tasks.append(task)
        return task

    def watcher(self, name: str, server: str) -> Watcher:
        watcher = Watcher(name, self.servers[server].url, server, self.room, self.clock)
        self.spawn(watcher.run(), name)
        return watcher

    async def place_watchers(self) -> None:
        """One watcher on a and b, and one on each worker of c (as far as the kernel lets:
        a watcher that lands on the worker the other has is opened again)."""
        first = [self.watcher("w-a", "a"), self.watcher("w-b", "b"), self.watcher("w-c1", "c")]
        await within(asyncio.gather(*(w.ready.wait() for w in first)), SETUP_TIMEOUT_S, "watchers")
        c = self.servers["c"]
        taken = c.worker_of(first[2].local_port or 0)
        for _ in range(PLACEMENT_TRIES):
            second = self.watcher("w-c2", "c")
            await within(second.ready.wait(), SETUP_TIMEOUT_S, "watcher w-c2")
            if c.worker_of(second.local_port or 0) != taken:
                break
            second.done.set()
            await within(self.tasks.pop(), CLOSE_TIMEOUT_S, "closing w-c2")
        self.watchers = [*first, second]

    async def start_people(self) -> None:
        for server in self.servers:
            url = self.servers[server].url
            self.senders.append(SocketSender(f"s-{server}-ws", url, server, self.room, self.clock))
            self.senders.append(HTTPSender(f"s-{server}-http", url, server, self.room, self.clock))
        for sender in self.senders:
            task = self.spawn(sender.run(), sender.name)
            if isinstance(sender, HTTPSender):
                self.http_senders.append(task)
        self.churners = [
            Churner("c-a", self.servers["a"].url, self.room, joins=True),
            Churner("c-b", self.servers["b"].url, self.room, joins=False),
        ]
        for churner in self.churners:
            self.spawn(churner.run(), churner.name)
        people: list[Sender | Churner] = [*self.senders, *self.churners]
        ready = asyncio.gather(*(p.ready.wait() for p in people))
        await within(ready, SETUP_TIMEOUT_S, "senders")

    def midway(self) -> None:
        for churner in self.churners:
            churner.moved.set()

    def busiest_worker_of_c(self) -> int | None:
        """The worker of c holding the most of the harness's connections (watchers first)."""
        c = self.servers["c"]
        load: Counter[int] = Counter()
        for watcher in self.watchers:
            if watcher.server == "c" and (pid := c.worker_of(watcher.local_port or 0)):
                load[pid] += 1
        return load.most_common(1)[0][0] if load else None

    def quiet(self, since_s: float) -> bool:
        """Every acknowledged message at every watcher, nothing new for ``since_s``."""
        if not all(task.done() for task in self.http_senders):
            return False
        acked = [t for s in self.senders for t, send in s.sends.items() if send.acknowledged]
        if not all(tag in w.seen for w in self.watchers for tag in acked):
            return False
        latest = max((d.at for w in self.watchers for d in w.log.deliveries[-1:]), default=0.0)
        return self.clock.now() - latest >= since_s

    async def close(self) -> list[str]:
        """Stop everyone; return what any of them died of (a harness fault, not the
        server's: a watcher that died would make its messages look lost)."""
        for sender in self.senders:
            sender.sending.clear()
        dones = [p.done for p in self.watchers] + [p.done for p in self.senders]
        for done in dones + [p.done for p in self.churners]:
            done.set()
        if not self.tasks:
            return []
        _, pending = await asyncio.wait(self.tasks, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        outcomes = await asyncio.gather(*self.tasks, return_exceptions=True)
        return [
            f"{task.get_name()}: {type(outcome).__name__}: {outcome}"[:300]
            for task, outcome in zip(self.tasks, outcomes, strict=True)
            if isinstance(outcome, Exception)
        ]


async def members_by_server(probes: dict[str, Client], room: str) -> dict[str, list[str] | None]:
    answers: dict[str, list[str] | None] = {}
    for server, client in probes.items():
        try:
            answers[server] = sorted(await client.members(room))
        except RoomchatError:
            answers[server] = None
    return answers


async def run_scenario(
    name: str, fault: Fault, deployment: Deployment, timing: Timing, logs: Path
) -> dict[str, Any]:
    """Run one scenario on fresh servers; its row, and what lies behind it."""
    room = f"chaos-{name}"
    clock = Clock()
    servers = await deployment.start_servers(f"chaos-{name}-{uuid4().hex[:8]}")
    if not deployment.registered:  # the database outlives the scenarios: its users too
        await register(servers[0].url, user_names())
        deployment.registered = True
    run = Run(servers, room, clock)
    timeline: dict[str, float] = {"servers_ready": clock.now()}
    result: dict[str, Any] = {}
    try:
        async with AsyncExitStack() as stack:
            probes = {
                s.name: await stack.enter_async_context(
                    Client(s.url, username=f"p-{s.name}", password=PASSWORD, timeout=HTTP_TIMEOUT_S)
                )
                for s in servers
            }
            await run.place_watchers()
            await run.start_people()
            prober = Prober(probes, room, clock)

            timeline["traffic_start"] = began = clock.now()
            for sender in run.senders:
                sender.sending.set()
            await asyncio.sleep(timing.warmup)
            timeline["fault_start"] = clock.now()
            target = Target(deployment, run.servers, run.busiest_worker_of_c, run.midway)
            result["fault"] = await fault(target)
            timeline["fault_end"] = fault_end = clock.now()
            probing = asyncio.create_task(prober.run(run.watchers, timing.probe_limit_s))
            end_at = max(began + timing.seconds, fault_end + timing.after)
            await asyncio.sleep(max(0.0, end_at - clock.now()))

            for sender in run.senders:
                sender.sending.clear()
            timeline["traffic_end"] = clock.now()
            await probing
            timeline["probing_end"] = clock.now()
            await bounded(lambda: run.quiet(timing.quiet_s), timing.quiet_limit_s)
            timeline["quiet"] = clock.now()
            await bounded(lambda: all(c.settled.is_set() for c in run.churners), 15.0)

            members: dict[str, list[str] | None] = {}
            deadline = time.monotonic() + timing.presence_limit_s
            while True:
                members = await members_by_server(probes, room)
                logs_now = [w.log for w in run.watchers]
                if presence_right(logs_now, members) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            timeline["presence_checked"] = clock.now()
            stored = await deployment.stored(room)
            recorded = Recorded(
                scenario=name,
                sends=[send for s in run.senders for send in s.sends.values()],
                watchers=[w.log for w in run.watchers],
                stored=stored,
                fault_end=fault_end,
                probes=prober.rounds,
                members_http=members,
                refused_frames={s.name: s.error_frames for s in run.senders},
            )
            result["row"] = count(recorded)
            result["members"] = {
                "http": members,
                "watchers": {w.name: sorted(w.members) for w in run.watchers},
            }
            result["probe_rounds"] = len(prober.rounds)
            result["probe_failures"] = dict(prober.failures)
    finally:
        result["harness_errors"] = await run.close()
        if "row" in result:
            result["row"]["harness_errors"] = len(result["harness_errors"])
        timeline["clients_closed"] = clock.now()
        deployment.stop_servers()
        timeline["servers_stopped"] = clock.now()
        result["server_error_lines"] = save_logs(servers, logs / name)
    result["timeline"] = {k: round(v, 2) for k, v in timeline.items()}
    result["senders"] = {s.name: s.summary() for s in run.senders}
    result["watchers"] = {w.name: w.summary() for w in run.watchers}
    result["churners"] = {c.name: dict(c.events) for c in run.churners}
    return result


def save_logs(servers: list[Server], directory: Path) -> dict[str, int]:
    """Keep each server's log; count its error lines (tracebacks, ``level=error``)."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for server in servers:
        text = server.output()
        (directory / f"server-{server.name}.log").write_text(text)
        lines = text.splitlines()
        counts[server.name] = sum(
            1 for line in lines if "Traceback" in line or "level=error" in line
        )
    with contextlib.suppress(OSError):
        if not any(directory.iterdir()):
            directory.rmdir()
    return counts
