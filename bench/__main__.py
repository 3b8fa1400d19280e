"""``python -m bench`` (``make bench``): roomchat against the FastAPI-docs baseline.

Every run starts its server afresh, pinned to one core (``taskset -c 0``), and drives it
from a load process pinned to the other (``taskset -c 1``); both on loopback. Each
scenario runs ``--repeat`` times per server, alternating which server goes first; the
table shows medians, the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import plan, profile, report
from bench.baseline_app import UVICORN_OPTIONS
from bench.servers import REPO, ROOMCHAT_ENV, SECRET_KEY, Server, current_commit, pinned

TARGETS = ("roomchat", "baseline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        default=",".join(plan.SCENARIOS),
        help=f"comma-separated, from {','.join(plan.SCENARIOS)} (default: all)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median shown)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (1 repetition)")
    parser.add_argument("--json", type=Path, help="write results here (default bench/results/)")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the server")
    parser.add_argument("--load-cpu", type=int, default=1, help="core for the load generator")
    parser.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the raw picows broadcast server in fanout (the practical ceiling)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample roomchat with py-spy during each run (figures of those runs are perturbed)",
    )
    parser.add_argument(
        "--baseline-ws", default=UVICORN_OPTIONS["ws"], help="uvicorn ws implementation"
    )
    args = parser.parse_args(argv)
    args.results = (args.json.parent if args.json else REPO / "bench" / "results").resolve()
    args.results.mkdir(parents=True, exist_ok=True)
    args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    for name in args.scenarios:
        plan.jobs(name, quick=False)  # refuses an unknown name early
    if args.quick and "--repeat" not in " ".join(argv if argv is not None else sys.argv):
        args.repeat = 1
    return args


def run_job(job: plan.Job, target: str, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(
        target,
        cpu=args.server_cpu,
        baseline_ws=args.baseline_ws,
        seed_users=plan.usernames(job.users) if target == "roomchat" else [],
    )
    began = time.monotonic()
    spy = None
    try:
        server.start()
        if args.profile and target == "roomchat":
            profile_path = (
                args.results / f"profile-{job.name.replace('/', '-')}-{int(time.time())}.txt"
            )
            spy = profile.start(server.pid, profile_path, args.load_cpu)
        spec = {
            "scenario": job.scenario,
            "target": target,
            "port": server.port,
            "server_pid": server.pid,
            "server_core": args.server_cpu,
            "load_core": args.load_cpu,
            "secret": SECRET_KEY,
            "params": job.params,
        }
        command = pinned(args.load_cpu, [sys.executable, "-m", "bench.load"])
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            command,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=job.timeout,
            cwd=REPO,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            return {"error": f"load exited {done.returncode}: {done.stderr[-2000:]}"}
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        rows = server.count_messages()
        if rows is not None:
            result["rows_in_database"] = rows
        return result
    except (subprocess.TimeoutExpired, RuntimeError, OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if spy is not None:
            profile.stop(spy)
            print(profile.summary(profile_path, top=15))
        log = server.stop()
        noisy = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line]
        if noisy:
            saved = (
                args.results
                / f"server-{job.name.replace('/', '-')}-{target}-{int(time.time())}.log"
            )
            saved.write_text(log)
            print(f"    {target} logged {len(noisy)} error line(s): see {saved}")
        print(f"    {job.name:<13} {target:<9} {time.monotonic() - began:5.1f} s")


def meta(args: argparse.Namespace) -> dict[str, Any]:
    from roomchat.config import Settings
    from roomchat.server import uvicorn_options

    env = {name: value for name, (value, _) in ROOMCHAT_ENV.items() if "SECRET" not in name}
    roomchat_settings = Settings(_env_file=None, **{k[9:].lower(): v for k, v in env.items()})
    commit = current_commit()
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "quick": args.quick,
        "profiled": args.profile,
        "repeat": args.repeat,
        "cores": os.cpu_count(),
        "server_cpu": args.server_cpu,
        "load_cpu": args.load_cpu,
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("uvicorn", "fastapi", "starlette", "picows")},
        "roomchat_uvicorn": {
            k: v for k, v in uvicorn_options(roomchat_settings).items() if k != "log_level"
        },
        "baseline_uvicorn": UVICORN_OPTIONS | {"ws": args.baseline_ws},
        "roomchat_settings": {
            name: {"value": "(fixed bench key)" if "SECRET" in name else value, "why": why}
            for name, (value, why) in ROOMCHAT_ENV.items()
        },
        "parameters": {
            job.name: job.params for s in args.scenarios for job in plan.jobs(s, quick=args.quick)
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = meta(args)
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores: server and load share one", file=sys.stderr)
    print(f"roomchat bench: {', '.join(args.scenarios)}; {args.repeat} repetition(s)")
    print(f"  server on core {args.server_cpu}, load on core {args.load_cpu}; loopback only")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in info['loadavg_before'])}")
    print("  roomchat runs with these settings, so that the benchmark's load is legitimate:")
    for name, (value, why) in ROOMCHAT_ENV.items():
        shown = "(fixed bench key)" if "SECRET" in name else value
        print(f"    {name}={shown}  # {why}")
    print("  users are created in roomchat's fresh SQLite database before it starts; tokens")
    print("  are minted with the shared secret (API.md); the baseline takes no token")
    print(f"  uvicorn: roomchat {info['roomchat_uvicorn']}, baseline {info['baseline_uvicorn']}")

    runs: report.Runs = {}
    raw: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        order = TARGETS if rep % 2 == 0 else TARGETS[::-1]
        print(f"repetition {rep + 1}/{args.repeat}")
        for scenario in args.scenarios:
            for job in plan.jobs(scenario, quick=args.quick):
                targets = [*order, "ceiling"] if args.ceiling and scenario == "fanout" else order
                for target in targets:
                    result = run_job(job, target, args)
                    if "error" in result:
                        print(f"    ! {job.name} {target}: {result['error'][:600]}")
                    runs.setdefault((job.name, target), []).append(result)
                    raw.append({"job": job.name, "target": target, "rep": rep, "result": result})

    info["loadavg_after"] = os.getloadavg()
    rows = report.summarize(runs)
    reps = "1 run" if args.repeat == 1 else f"medians of {args.repeat} runs"
    print()
    print(f"roomchat vs baseline ({reps}; ratio = roomchat ÷ baseline, same run):")
    print(report.table(rows))
    top = report.ceiling(runs)
    if top is not None:
        print(report.ceiling_line(top))
    print()
    print("Was the server the bottleneck? (medians over the measured windows)")
    print(report.health_table(runs))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in info['loadavg_after'])}")

    path = args.json or args.results / f"bench-{int(time.time())}.json"
    path.write_text(
        json.dumps(
            {"meta": info, "summary": rows, "ceiling": top, "runs": raw}, indent=2, default=repr
        )
        + "\n"
    )
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
