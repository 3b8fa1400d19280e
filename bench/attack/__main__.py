"""``python -m bench.attack`` (``make fuzz``): issue 12's attack scenario.

One hostile account runs items 1, 2, 4 and 8 of issue 12 together (``bench.attack.
attacker``) while probe users chat, poll ``/healthz`` and log in (``bench.attack.probe``);
then the same probe runs against a server nobody attacks. Both runs start ``roomchat
serve`` afresh, pinned to one core, on a copy of one seeded database, with roomchat's
default limits; the probe and the attacker run in processes of their own on the other
core. The table shows each figure quiet and attacked, their ratio and issue 12's target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.attack import report, seed
from bench.procstat import CpuMeter, rss_bytes
from bench.servers import PASSWORD, REPO, SECRET_KEY, Server, current_commit, pinned

ATTACKER_ADDRESS = "127.0.0.2"
PROBE_ADDRESS = "127.0.0.3"
AUTHOR, VICTIM = "bench-author", "victim"
PROBE_USERS = ["probe0", "probe1", "probe2"]
BIG_ROOM = "big"
RSS_EVERY_S = 0.1
READY_TIMEOUT_S = 120.0

#: roomchat's settings in both runs, and why: everything else is the default.
ATTACK_ENV: dict[str, tuple[str, str]] = {
    "ROOMCHAT_SECRET_KEY": (SECRET_KEY, "fixed, so the server starts without writing a key"),
    "ROOMCHAT_LOG_LEVEL": ("warning", "no access-log line per attack request"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.attack", description=__doc__)
    parser.add_argument("--seconds", type=float, help="length of the attack (default 60)")
    parser.add_argument("--quiet-seconds", type=float, help="quiet run (default: --seconds)")
    parser.add_argument("--quick", action="store_true", help="20 s attacked, 10 s quiet")
    parser.add_argument(
        "--items", default="abuse,pings,replay,hash", help="attacks to run (default: all four)"
    )
    parser.add_argument("--skip-quiet", action="store_true", help="only the attacked run")
    parser.add_argument("--rss-cap-mb", type=float, default=2000, help="stop the attack here")
    parser.add_argument("--big-room-messages", type=int, default=20_000)
    parser.add_argument("--big-room-chars", type=int, default=4000)
    parser.add_argument(
        "--attacker-logins",
        choices=["wrong", "right"],
        default="wrong",
        help="the password of the attacker's own logins (item 8's flood)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ROOMCHAT_NAME=VALUE",
        help="one more server setting (both runs); repeatable",
    )
    parser.add_argument("--json", type=Path, help="write results here (default bench/results/)")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the server")
    parser.add_argument("--load-cpu", type=int, default=1, help="core for probe and attacker")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 20.0 if args.quick else 60.0
    if args.quiet_seconds is None:
        args.quiet_seconds = min(10.0, args.seconds) if args.quick else args.seconds
    args.items = [item.strip() for item in args.items.split(",") if item.strip()]
    unknown = set(args.items) - {"abuse", "pings", "replay", "hash"}
    if unknown:
        parser.error(f"unknown items {sorted(unknown)}: expected abuse, pings, replay, hash")
    args.env = dict(ATTACK_ENV)
    for setting in args.set:
        name, sep, value = setting.partition("=")
        if not sep or not name.startswith("ROOMCHAT_"):
            parser.error(f"--set takes ROOMCHAT_NAME=VALUE, not {setting!r}")
        args.env[name] = (value, "set with --set")
    args.results = (args.json.parent if args.json else REPO / "bench" / "results").resolve()
    args.results.mkdir(parents=True, exist_ok=True)
    return args


def probe_spec(port: int, seconds: float) -> dict[str, Any]:
    return {
        "port": port,
        "source": PROBE_ADDRESS,
        "users": PROBE_USERS,
        "victim": VICTIM,
        "password": PASSWORD,
        "seconds": seconds,
        "chat_interval_s": 0.1,  # 3 users in turn: 3.3 messages/s each, under the default 5
        "healthz_interval_s": 0.1,
        "login_interval_s": 0.5,
        "max_in_flight": 50,
        "timeout_s": 10.0,
    }


def attacker_spec(port: int, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "port": port,
        "source": ATTACKER_ADDRESS,
        "username": "attacker",
        "password": "attacker password",
        "seconds": seconds,
        "timeout_s": 10.0,
        "nice": 5,
        "items": args.items,
        "abuse": {"sockets": 2, "burst": 100, "batch": 512, "room": "attack"},
        "pings": {"sockets": 1, "payload": 125, "batch": 256, "room": "attack"},
        "replay": {"sockets": 4, "hold_s": 10.0, "room": BIG_ROOM},
        "hash": {
            "register_per_s": 50,
            "login_per_s": 10,
            "in_flight": 64,
            "login_password": args.attacker_logins,
        },
    }


class Child:
    """A probe or attacker process: JSON spec in, ``ready``, ``go``, JSON figures out."""

    def __init__(self, module: str, process: asyncio.subprocess.Process, stderr: Any) -> None:
        self.module = module
        self.process = process
        self._stderr = stderr

    @classmethod
    async def spawn(cls, module: str, spec: dict[str, Any], cpu: int) -> Child:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (read back and closed in `result`)
        process = await asyncio.create_subprocess_exec(
            *pinned(cpu, [sys.executable, "-m", module]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            limit=1 << 22,
        )
        child = cls(module, process, stderr)
        await child.write({**spec})
        return child

    async def write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            await self.process.wait()
            raise RuntimeError(f"{self.module} exited {self.process.returncode}: {self.errors()}")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def errors(self) -> str:
        self._stderr.seek(0)
        return bytes(self._stderr.read()[-3000:]).decode(errors="replace")

    def terminate(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def finish(self) -> None:
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._stderr.close()


class Sampler:
    """The server's RSS every 0.1 s, and its CPU over the run; stops the attack at the cap."""

    def __init__(self, pid: int, core: int, cap_bytes: float) -> None:
        self.pid, self.cap = pid, cap_bytes
        self.samples: list[tuple[float, int]] = []  # (seconds since start, rss)
        self.cap_hit_at: float | None = None
        self.cpu = CpuMeter(pid, core)
        self.figures: dict[str, float | None] = {}

    async def run(self, start: float, deadline: float, attacker: Child | None) -> None:
        self.cpu.start(time.monotonic())
        while True:
            now = time.monotonic()
            try:
                rss = rss_bytes(self.pid)
            except (OSError, RuntimeError):
                return  # the server is gone; the run reports it
            self.samples.append((now - start, rss))
            if rss > self.cap and self.cap_hit_at is None and attacker is not None:
                self.cap_hit_at = now - start
                attacker.terminate()
            if now >= deadline and not self.figures:
                self.measure_cpu(now)
            await asyncio.sleep(RSS_EVERY_S)

    def measure_cpu(self, now: float) -> None:
        """The server's CPU share from the start to ``now`` (the deadline, or the run's end)."""
        try:
            cpu, irq, others = self.cpu.shares(now)
        except (OSError, RuntimeError):
            return
        self.figures = {"server_cpu": cpu, "server_core_irq": irq, "others": others}

    def summary(self) -> dict[str, Any]:
        during = [rss for t, rss in self.samples if t >= 0]
        before = [rss for t, rss in self.samples if t < 0] or during[:1]
        per_second: dict[int, int] = {}
        for t, rss in self.samples:
            if t >= 0:
                per_second[int(t)] = max(per_second.get(int(t), 0), rss)
        return {
            "rss_start_mb": before[-1] / 1e6 if before else None,
            "rss_peak_mb": max(during) / 1e6 if during else None,
            "rss_end_mb": during[-1] / 1e6 if during else None,
            "rss_per_second_mb": [round(per_second[s] / 1e6, 1) for s in sorted(per_second)],
            "rss_cap_hit_at_s": self.cap_hit_at,
            **self.figures,
        }


async def run_one(
    name: str, seconds: float, attacked: bool, args: argparse.Namespace, template: Path
) -> dict[str, Any]:
    server = Server("roomchat", cpu=args.server_cpu, env=args.env)
    seed.copy(template, server.database)
    children: list[Child] = []
    began = time.monotonic()
    result: dict[str, Any]
    try:
        result = await _measure(server, seconds, attacked, args, children)
    except (RuntimeError, OSError, ValueError, TimeoutError) as exc:
        details = "\n".join(f"{c.module}: {c.errors()}" for c in children)
        result = {"error": f"{type(exc).__name__}: {exc}\n{details}"[-4000:]}
    finally:
        for child in children:
            child.terminate()
            await child.finish()
        log = server.stop()
    noisy = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line]
    result["server_error_lines"] = len(noisy)
    if noisy:
        saved = args.results / f"server-attack-{name}-{int(time.time())}.log"
        saved.write_text(log)
        result["server_log"] = str(saved)
        print(f"    {name}: the server logged {len(noisy)} error line(s): see {saved}")
    print(f"    {name:<8} {time.monotonic() - began:5.1f} s")
    return result


async def _measure(
    server: Server,
    seconds: float,
    attacked: bool,
    args: argparse.Namespace,
    children: list[Child],
) -> dict[str, Any]:
    """Start the server, the probe and (attacked) the attacker; run; collect the figures."""
    server.start()
    probe = await Child.spawn("bench.attack.probe", probe_spec(server.port, seconds), args.load_cpu)
    children.append(probe)
    attacker = None
    if attacked:
        spec = attacker_spec(server.port, seconds, args)
        attacker = await Child.spawn("bench.attack.attacker", spec, args.load_cpu)
        children.append(attacker)
    for child in children:
        await child.line(READY_TIMEOUT_S)
    sampler = Sampler(server.pid, args.server_cpu, args.rss_cap_mb * 1e6)
    start = time.monotonic() + 0.5
    sampling = asyncio.create_task(sampler.run(start, start + seconds, attacker))
    try:
        for child in children:
            await child.write({"go": start})
        limit = seconds + 60
        figures = {"probe": await probe.line(limit)}
        if attacker is not None:
            figures["attacker"] = await attacker.line(limit)
    finally:
        sampling.cancel()
    if not sampler.figures:
        sampler.measure_cpu(time.monotonic())
    return {"seconds": seconds, **figures, "server": sampler.summary()}


def meta(args: argparse.Namespace) -> dict[str, Any]:
    commit = current_commit()
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cores": os.cpu_count(),
        "server_cpu": args.server_cpu,
        "load_cpu": args.load_cpu,
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "seconds": args.seconds,
        "quiet_seconds": None if args.skip_quiet else args.quiet_seconds,
        "rss_cap_mb": args.rss_cap_mb,
        "big_room": {"messages": args.big_room_messages, "chars": args.big_room_chars},
        "roomchat_settings": {
            name: {"value": "(fixed bench key)" if "SECRET" in name else value, "why": why}
            for name, (value, why) in args.env.items()
        },
        "probe": probe_spec(0, args.quiet_seconds),
        "attacker": {k: v for k, v in attacker_spec(0, args.seconds, args).items() if k != "port"},
    }


async def main_async(args: argparse.Namespace) -> None:
    info = meta(args)
    print(f"roomchat attack scenario (issue 12): {', '.join(args.items)} for {args.seconds:g} s")
    print(f"  server on core {args.server_cpu}; probe and attacker on core {args.load_cpu}")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in info['loadavg_before'])}")
    print("  roomchat runs with its default limits; the only settings given:")
    for name, (value, why) in args.env.items():
        shown = "(fixed bench key)" if "SECRET" in name else value
        print(f"    {name}={shown}  # {why}")
    with tempfile.TemporaryDirectory(prefix="roomchat-attack-") as scratch:
        template = Path(scratch) / "template.db"
        began = time.monotonic()
        await seed.build(
            template,
            users=[AUTHOR, VICTIM, *PROBE_USERS],
            room=BIG_ROOM,
            messages=args.big_room_messages,
            chars=args.big_room_chars,
        )
        size = template.stat().st_size / 1e6
        print(
            f"  seeded room {BIG_ROOM!r}: {args.big_room_messages:,} messages of "
            f"{args.big_room_chars:,} characters ({size:.0f} MB database, "
            f"{time.monotonic() - began:.1f} s)"
        )
        runs: dict[str, dict[str, Any]] = {}
        if not args.skip_quiet:
            runs["quiet"] = await run_one("quiet", args.quiet_seconds, False, args, template)
        runs["attack"] = await run_one("attack", args.seconds, True, args, template)
    for name, result in runs.items():
        if "error" in result:
            print(f"    ! {name}: {result['error']}")
    info["loadavg_after"] = os.getloadavg()
    rows = report.summarize(runs)
    print()
    print("The probe and the server, quiet and under attack (ratio = attack ÷ quiet):")
    print(report.table(rows))
    print()
    print("What the attacker did (one account, from one address):")
    print(report.attacker_lines(runs.get("attack", {}).get("attacker")))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in info['loadavg_after'])}")
    path = args.json or args.results / f"attack-{int(time.time())}.json"
    path.write_text(json.dumps({"meta": info, "summary": rows, "runs": runs}, indent=2) + "\n")
    print(f"JSON: {path}")


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
