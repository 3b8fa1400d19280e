"""``python -m bench.chaos`` (``make chaos``): issue 15's faults against real processes.

A PostgreSQL and a Redis of the run's own; per scenario three fresh ``roomchat serve``
(``a`` and ``b`` with one worker, ``c`` with ``--workers 2``), watchers on every server,
senders through ``roomchat.client`` at 2.5 messages/s each; then the fault (a user leaves
and another joins half-way through it), and a count of what was sent, acknowledged,
delivered, lost, duplicated, and how long until a message posted on every server reached
every watcher again. Exits 1 when a scenario lost or duplicated a message, could not be
run, or one of its clients failed; see bench/README.md, "The fault scenarios".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos import report
from bench.chaos.clients import PACE_S
from bench.chaos.deployment import CHAOS_ENV, REPO, Deployment
from bench.chaos.faults import FAULTS
from bench.chaos.scenario import Timing, run_scenario


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help=f"one of {', '.join(FAULTS)} (repeatable or comma-separated; default all)",
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="traffic per scenario, at least (default 20)"
    )
    parser.add_argument("--json", type=Path, help="default bench/results/chaos-<time>.json")
    args = parser.parse_args(argv)
    names = [n.strip() for given in args.scenario for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown scenario {unknown}: expected {', '.join(FAULTS)}")
    args.names = names or list(FAULTS)
    if args.seconds < 5:
        parser.error("--seconds must be at least 5")
    args.timing = Timing(seconds=args.seconds, warmup=min(5.0, args.seconds / 4))
    return args


def meta(args: argparse.Namespace) -> dict[str, Any]:
    from bench.servers import current_commit

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": current_commit(),
        "cores": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "scenarios": args.names,
        "timing": vars(args.timing),
        "pace_per_sender_per_s": 1 / PACE_S,
        "roomchat_settings": {
            name: {"value": "(fixed key)" if "SECRET" in name else value, "why": why}
            for name, (value, why) in CHAOS_ENV.items()
        },
    }


async def run_all(args: argparse.Namespace, deployment: Deployment, logs: Path) -> list[Any]:
    outcomes = []
    for name in args.names:
        began = time.monotonic()
        try:
            result = await run_scenario(name, FAULTS[name], deployment, args.timing, logs)
        except Exception as exc:  # one scenario failing does not end the run
            result = {"row": {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}}
            result["traceback"] = traceback.format_exc()[-4000:]
            deployment.stop_servers()
        result["seconds"] = round(time.monotonic() - began, 1)
        outcomes.append((name, result))
        row = result["row"]
        print(f"  {name:<16} {result['seconds']:5.1f} s  {row.get('error') or result.get('fault')}")
        for problem in result.get("harness_errors", []):
            print(f"    ! a client of the harness failed (not the server's fault): {problem}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = Deployment.check()
    if problem:
        print(f"bench.chaos cannot run here: {problem}", file=sys.stderr)
        return 2
    info = meta(args)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    logs = results / f"chaos-{stamp}-logs"
    print(f"roomchat fault scenarios (issue 15): {', '.join(args.names)}")
    print(f"  traffic {args.timing.seconds:g} s per scenario; fault after {args.timing.warmup:g} s")
    for name, (value, why) in CHAOS_ENV.items():
        print(f"    {name}={'(fixed key)' if 'SECRET' in name else value}  # {why}")
    deployment = Deployment()
    try:
        deployment.start()
        outcomes = asyncio.run(run_all(args, deployment, logs))
    finally:
        deployment.close()
    rows = [result["row"] for _, result in outcomes]
    info["loadavg_after"] = os.getloadavg()
    print()
    print(report.table(rows))
    path = args.json or results / f"chaos-{stamp}.json"
    document = {"meta": info, "rows": rows, "scenarios": dict(outcomes), "logs": str(logs)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"JSON: {path}")
    print(f"server logs: {logs}")
    bad = report.failed(rows)
    if bad:
        print(f"failed (see bench/README.md, 'Reading the table'): {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
