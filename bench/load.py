"""The load process: ``taskset -c 1 python -m bench.load`` runs one scenario against one server.

It reads a JSON spec on stdin (scenario, target, port, server pid, parameters) and prints
one JSON object of figures on stdout. It runs on uvloop with picows sockets, on a core of
its own, so that the server is the bottleneck; it reports its own CPU share to prove it.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
from typing import Any

import uvloop

from bench.context import Context


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(
        target=spec["target"],
        ws_url=f"ws://127.0.0.1:{spec['port']}",
        port=spec["port"],
        server_pid=spec["server_pid"],
        secret=spec["secret"],
        params=spec["params"],
        server_core=spec.get("server_core"),
        load_core=spec.get("load_core"),
    )
    scenario = importlib.import_module(f"bench.scenarios.{spec['scenario']}")
    result: dict[str, Any] = await scenario.run(ctx)
    return result


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.load(sys.stdin)
    result = uvloop.run(run(spec))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
