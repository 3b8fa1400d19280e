"""What the server process costs: resident memory and CPU time, read from ``/proc``."""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` (what ``ps`` shows as RSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def core_busy_seconds(core: int) -> float:
    """Time core ``core`` ran tasks (user, nice, system) or lost to the hypervisor (steal).

    Interrupt and softirq time is left out: on loopback it is mostly our own sockets' work.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
                    int(value) for value in line.split()[1:9]
                )
                return (user + nice + system + steal) / _TICKS
    raise RuntimeError(f"no core {core} in /proc/stat")


class CpuMeter:
    """Over a window: the server's CPU as a share of one core, and what others took of its core.

    ``stolen`` is the share of the server's core that other processes used meanwhile (other
    people's test suites on a shared machine): when it is high, the figures are noisy.
    """

    def __init__(self, pid: int, core: int | None) -> None:
        self._pid = pid
        self._core = core
        self._cpu = self._busy = self._wall = 0.0

    def start(self, now: float) -> None:
        self._cpu, self._wall = cpu_seconds(self._pid), now
        self._busy = core_busy_seconds(self._core) if self._core is not None else 0.0

    def shares(self, now: float) -> tuple[float, float | None]:
        """``(server_cpu, stolen)`` since ``start``."""
        elapsed = max(1e-9, now - self._wall)
        used = cpu_seconds(self._pid) - self._cpu
        if self._core is None:
            return used / elapsed, None
        busy = core_busy_seconds(self._core) - self._busy
        return used / elapsed, max(0.0, busy - used) / elapsed
