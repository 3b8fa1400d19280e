"""The attack scenario's table: each figure quiet and attacked, their ratio, the target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import _markdown, fmt
from bench.stats import ratio

#: (quiet, attacked, attacked ÷ quiet) -> met; None when it cannot be told
Check = Callable[[Any, Any, float | None], bool | None]


def _within(times: float) -> Check:
    return lambda _q, _a, r: None if r is None else r <= times


def _attacked(test: Callable[[float], bool]) -> Check:
    return lambda _q, a, _r: None if not isinstance(a, int | float) else test(a)


@dataclass(frozen=True)
class Figure:
    part: str
    label: str
    path: tuple[str, ...]
    target: str = ""
    check: Check | None = None
    percent: bool = False
    ratio: bool = True  # False for counts: the two runs may differ in length


FIGURES = [
    Figure("chat", "round trip p50 (ms)", ("probe", "chat", "p50_ms")),
    Figure("chat", "round trip p99 (ms)", ("probe", "chat", "p99_ms"), "≤ 2× quiet", _within(2)),
    Figure("chat", "round trip max (ms)", ("probe", "chat", "max_ms")),
    Figure("chat", "messages echoed", ("probe", "chat", "echoed"), ratio=False),
    Figure("chat", "messages lost", ("probe", "chat", "lost"), "0", _attacked(lambda v: v == 0)),
    Figure(
        "chat",
        "error frames to the probe",
        ("probe", "chat", "error_frames"),
        "0",
        _attacked(lambda v: v == 0),
    ),
    Figure(
        "chat",
        "probe sockets closed by the server",
        ("probe", "chat", "closed_by_server"),
        "0",
        _attacked(lambda v: v == 0),
    ),
    Figure("/healthz", "p50 (ms)", ("probe", "healthz", "p50_ms")),
    Figure("/healthz", "p99 (ms)", ("probe", "healthz", "p99_ms"), "≤ 2× quiet", _within(2)),
    Figure("/healthz", "max (ms)", ("probe", "healthz", "max_ms")),
    Figure(
        "/healthz",
        "failed or skipped",
        ("probe", "healthz", "failed+skipped"),
        "0",
        _attacked(lambda v: v == 0),
    ),
    Figure("login", "victim login p50 (ms)", ("probe", "login", "p50_ms")),
    Figure(
        "login", "victim login p99 (ms)", ("probe", "login", "p99_ms"), "≤ 2× quiet", _within(2)
    ),
    Figure("login", "victim logins", ("probe", "login", "requests"), ratio=False),
    Figure(
        "login",
        "victim logins failed",
        ("probe", "login", "failed"),
        "0",
        _attacked(lambda v: v == 0),
    ),
    Figure(
        "server", "peak RSS (MB)", ("server", "rss_peak_mb"), "< 300", _attacked(lambda v: v < 300)
    ),
    Figure("server", "RSS at start (MB)", ("server", "rss_start_mb")),
    Figure("server", "RSS at the end (MB)", ("server", "rss_end_mb")),
    Figure(
        "server", "attack stopped at RSS cap after (s)", ("server", "rss_cap_hit_at_s"), ratio=False
    ),
    Figure("server", "error lines in its log", ("server_error_lines",), ratio=False),
    Figure("server", "CPU (of its core)", ("server", "server_cpu"), percent=True),
    Figure("run health", "others on the server's core", ("server", "others"), percent=True),
    Figure("run health", "probe's own lateness p99 (ms)", ("probe", "probe_late_p99_ms")),
]


def value(run: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    if run is None or "error" in run:
        return None
    *parents, key = path
    node: Any = run
    for name in parents:
        node = node.get(name) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    if "+" in key:
        parts = [node.get(k) for k in key.split("+")]
        return None if any(p is None for p in parts) else sum(parts)
    return node.get(key)


def summarize(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for figure in FIGURES:
        quiet, attacked = (
            value(runs.get("quiet"), figure.path),
            value(runs.get("attack"), figure.path),
        )
        numeric = all(isinstance(v, int | float) for v in (quiet, attacked))
        q = ratio(attacked, quiet) if numeric and figure.ratio and not figure.percent else None
        rows.append(
            {
                "part": figure.part,
                "figure": figure.label,
                "key": ".".join(figure.path),
                "quiet": quiet,
                "attack": attacked,
                "ratio": q,
                "target": figure.target,
                "met": figure.check(quiet, attacked, q) if figure.check else None,
                "percent": figure.percent,
            }
        )
    return rows


def _shown(value: Any, percent: bool) -> str:
    if percent and isinstance(value, int | float):
        return f"{value:.0%}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return fmt(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["part", "figure", "quiet", "attack", "ratio", "target", "met"]
    body = [
        [
            r["part"],
            r["figure"],
            _shown(r["quiet"], r["percent"]),
            _shown(r["attack"], r["percent"]),
            "" if r["ratio"] is None else f"{r['ratio']:.2f}×",
            r["target"],
            "" if r["met"] is None else fmt(r["met"]),
        ]
        for r in rows
    ]
    return _markdown(head, body, right={2, 3, 4})


ITEMS = {
    "abuse": "item 1, abuse close, then tiny frames",
    "pings": "item 2, ping flood, never reading",
    "replay": "item 4, since=0 replays, never reading",
    "hash": "item 8, registrations and logins",
}


def attacker_lines(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "  (no attacker figures)"
    lines = [
        f"  ran {figures['ran_s']:.1f} s" + (" (stopped early)" if figures["stopped_early"] else "")
    ]
    for failure in figures.get("worker_failures", []):
        lines.append(f"  ! a worker failed: {failure}")
    for name, label in ITEMS.items():
        item = figures.get(name)
        if item is None:
            continue
        parts = []
        for key, entry in item.items():
            if isinstance(entry, dict) and "median" in entry:
                parts.append(f"{key}: median {fmt(entry['median'])}, max {fmt(entry['max'])}")
            elif isinstance(entry, dict) and "p99_ms" in entry:
                parts.append(
                    f"latency p50 {fmt(entry['p50_ms'])} ms, p99 {fmt(entry['p99_ms'])} ms"
                )
            elif isinstance(entry, int):
                parts.append(f"{key} {entry:,}")
            else:
                parts.append(f"{key} {fmt(entry)}")
        lines.append(f"  {label}: " + "; ".join(parts))
    return "\n".join(lines)
