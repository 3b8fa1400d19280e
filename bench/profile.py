"""``--profile``: sample roomchat with py-spy while the load runs, and summarise where time goes.

py-spy samples the server without pausing it (``--nonblocking``) from the load's core and
writes collapsed stacks (``file.txt``: one ``frame;frame;… count`` line per stack, for
flame-graph tools or speedscope). ``summary`` ranks functions by their own time and by the
time spent under them. Run it alone too: ``python -m bench.profile FILE``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.servers import pinned


def start(pid: int, output: Path, cpu: int | None, rate: int = 250) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"]
    command += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(pinned(cpu, command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(spy: subprocess.Popen[bytes]) -> None:
    """py-spy writes its file when interrupted, as on Ctrl-C."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()


def summary(path: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            under[frame] += samples
    if not total:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "", "own time (the function itself):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "total time (the function and what it calls):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in under.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summary(Path(name)))
