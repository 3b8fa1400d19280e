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


def core_seconds(core: int) -> tuple[float, float]:
    """Core ``core``'s time so far: (running tasks or stolen by the hypervisor, in interrupts).

    Interrupt and softirq time is not charged to any process; on loopback it is mostly
    the kernel moving our own sockets' packets, on the core of the process that sent them.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                user, nice, system, _idle, _iowait, irq, softirq, steal = (
                    int(value) for value in line.split()[1:9]
                )
                return (user + nice + system + steal) / _TICKS, (irq + softirq) / _TICKS
    raise RuntimeError(f"no core {core} in /proc/stat")


class CpuMeter:
    """Over a window: a process's CPU, its core's interrupt time, and what others took.

    All three are shares of one core. ``others`` is what other processes used of the
    process's core meanwhile (other people's test suites on a shared machine): when it
    is high, the figures are noisy. ``irq`` is mostly the kernel's loopback work.
    """

    def __init__(self, pid: int, core: int | None) -> None:
        self._pid = pid
        self._core = core
        self._cpu = self._busy = self._irq = self._wall = 0.0

    def start(self, now: float) -> None:
        self._cpu, self._wall = cpu_seconds(self._pid), now
        if self._core is not None:
            self._busy, self._irq = core_seconds(self._core)

    def shares(self, now: float) -> tuple[float, float | None, float | None]:
        """``(cpu, irq, others)`` since ``start``."""
        elapsed = max(1e-9, now - self._wall)
        used = cpu_seconds(self._pid) - self._cpu
        if self._core is None:
            return used / elapsed, None, None
        busy, irq = core_seconds(self._core)
        others = max(0.0, busy - self._busy - used)
        return used / elapsed, (irq - self._irq) / elapsed, others / elapsed
