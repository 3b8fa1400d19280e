"""What ``make bench`` runs: each scenario's parameters (full and ``--quick``) and its users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCENARIOS = ("fanout", "rooms", "connect", "slow", "store")


@dataclass(frozen=True)
class Job:
    """One run of one scenario variant against one server."""

    scenario: str
    variant: str  # "" or, for slow, "stuck" / "control"
    params: dict[str, Any]
    users: int  # users bench00000… to create before roomchat starts
    timeout: float  # seconds the load process may take

    @property
    def name(self) -> str:
        return f"{self.scenario}/{self.variant}" if self.variant else self.scenario


def jobs(scenario: str, *, quick: bool) -> list[Job]:
    """The runs of one scenario (slow has two: with the stuck member, and without)."""
    if scenario == "fanout":
        params = {
            "receivers": 500,
            "window": 10,
            "text_bytes": 100,
            "warmup_s": 0.5 if quick else 1.0,
            "duration_s": 2.0 if quick else 4.0,
        }
        return [Job("fanout", "", params, users=500, timeout=120)]
    if scenario == "rooms":
        params = {
            "rooms": 20 if quick else 100,
            "members": 10,
            "rate_per_member": 1.0,
            "text_bytes": 100,
            "warmup_s": 1.0,
            "duration_s": 2.0 if quick else 6.0,
        }
        return [Job("rooms", "", params, users=params["rooms"] * 10, timeout=120)]
    if scenario == "connect":
        params = {"sockets": 500 if quick else 5000, "room_size": 10, "concurrency": 100}
        return [Job("connect", "", params, users=params["sockets"], timeout=240)]
    if scenario == "slow":
        base = {"receivers": 50, "text_bytes": 8192, "rate": 200, "slice_s": 2.0}
        stuck = base | {"duration_s": 5.0 if quick else 20.0, "stuck": True}
        control = base | {"duration_s": 2.0 if quick else 6.0, "stuck": False}
        return [
            Job("slow", "stuck", stuck, users=50, timeout=120),
            Job("slow", "control", control, users=50, timeout=120),
        ]
    if scenario == "store":
        params = {
            "senders": 100,
            "window": 8,
            "text_bytes": 100,
            "warmup_s": 0.5 if quick else 1.0,
            "duration_s": 2.0 if quick else 4.0,
        }
        return [Job("store", "", params, users=100, timeout=120)]
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")


def usernames(count: int) -> list[str]:
    return [f"bench{i:05d}" for i in range(count)] + ["bench-sender", "bench-stuck"]
