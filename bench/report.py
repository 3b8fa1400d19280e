"""The summary: each figure for roomchat and the baseline (medians of the repetitions),
their ratio, the issue's target and whether it is met; printed as a table, kept as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.stats import median, ratio

Runs = dict[tuple[str, str], list[dict[str, Any]]]  # (job name, target) -> results per rep
Check = Callable[[Any, Any, float | None], bool | None]  # (roomchat, baseline, ratio) -> met


@dataclass(frozen=True)
class Figure:
    job: str
    key: str
    label: str
    target: str = ""
    check: Check | None = None


def _at_least(x: float) -> Check:
    return lambda _r, _b, q: None if q is None else q >= x


def _at_most(x: float) -> Check:
    return lambda _r, _b, q: None if q is None else q <= x


def _roomchat(test: Callable[[Any], bool]) -> Check:
    return lambda r, _b, _q: None if r is None else test(r)


FIGURES = [
    Figure("fanout", "deliveries_per_s", "deliveries/s", "≥ 1.5× (stretch 2×)", _at_least(1.5)),
    Figure("fanout", "p50_ms", "latency p50 (ms)"),
    Figure("fanout", "p99_ms", "latency p99 (ms)"),
    Figure("fanout", "lost", "lost (all receivers)", "0", _roomchat(lambda v: v == 0)),
    Figure("fanout", "dropped_while_joining", "receivers dropped while 500 joined"),
    Figure("rooms", "p99_ms", "latency p99 (ms)", "≤ 1× baseline", _at_most(1.0)),
    Figure("rooms", "p50_ms", "latency p50 (ms)"),
    Figure("rooms", "deliveries_per_s", "deliveries/s"),
    Figure("rooms", "lost", "lost", "0", _roomchat(lambda v: v == 0)),
    Figure("rooms", "dropped_while_joining", "members dropped while joining"),
    Figure("connect", "connects_per_s", "connects/s", "≥ 1× baseline", _at_least(1.0)),
    Figure("connect", "rss_per_socket_kib", "RSS per idle socket (KiB)", "≤ 1×", _at_most(1.0)),
    Figure("connect", "connect_p99_ms", "handshake→ready p99 (ms)"),
    Figure("connect", "failed", "failed", "0", _roomchat(lambda v: v == 0)),
    Figure("slow/stuck", "p99_ms", "others' p99, one stuck (ms)"),
    Figure("slow/control", "p99_ms", "others' p99, none stuck (ms)"),
    Figure(
        "slow",
        "p99_stuck_over_control",
        "p99 stuck ÷ none stuck",
        "≤ 2",
        _roomchat(lambda v: v <= 2),
    ),
    Figure("slow/stuck", "worst_slice_p99_ms", "worst 2-s slice p99 (ms)"),
    Figure(
        "slow/stuck",
        "stuck_dropped_after_s",
        "stuck dropped (1013) after (s)",
        "≤ 5",
        _roomchat(lambda v: isinstance(v, int | float) and v <= 5),
    ),
    # API.md cuts a client off 5 s after its close frame: about 5 here in a full run,
    # "held" in a --quick one, where the stuck member reads again within those 5 s.
    Figure("slow/stuck", "stuck_close_after_drop_s", "socket let go after drop (s)"),
    Figure(
        "slow/stuck",
        "stuck_close_code",
        "close code it reads",
        "1013, or eof",  # eof: it reads again after the cut-off (a full run's 20 s)
        _roomchat(lambda v: v in {"1013", "eof"}),
    ),
    Figure(
        "slow/stuck",
        "rss_growth_mib",
        "server RSS growth (MiB)",
        "< 20",
        _roomchat(lambda v: v < 20),
    ),
    Figure("slow/stuck", "lost", "lost (others)", "0", _roomchat(lambda v: v == 0)),
    Figure("store", "stored_per_s", "messages stored/s", "≥ 5,000", _roomchat(lambda v: v >= 5000)),
    Figure("store", "lost", "lost", "0", _roomchat(lambda v: v == 0)),
]


def _combine(values: list[Any]) -> Any:
    """Median of numbers; the most common value of anything else (a close code)."""
    if not values:
        return None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return median(values)
    if any(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        numbers = [v for v in values if isinstance(v, int | float)]
        if len(numbers) * 2 > len(values):
            return median(numbers)
    return Counter(map(str, values)).most_common(1)[0][0] if values else None


def figure_value(runs: Runs, figure: Figure, target: str) -> Any:
    if figure.key == "p99_stuck_over_control":
        stuck = _combine([r.get("p99_ms") for r in runs.get(("slow/stuck", target), [])])
        control = _combine([r.get("p99_ms") for r in runs.get(("slow/control", target), [])])
        return ratio(stuck, control) if isinstance(stuck, float) else None
    results = runs.get((figure.job, target), [])
    values = [r.get(figure.key) for r in results if "error" not in r]
    if figure.key == "stuck_close_after_drop_s" and values and all(v is None for v in values):
        return "held" if any(r.get("stuck_dropped_after_s") is not None for r in results) else None
    return _combine([v if v is not None else "none" for v in values])


def summarize(runs: Runs) -> list[dict[str, Any]]:
    rows = []
    for figure in FIGURES:
        scenario = figure.job.split("/")[0]
        if not any(job.split("/")[0] == scenario for job, _ in runs):
            continue
        ours, theirs = (
            figure_value(runs, figure, "roomchat"),
            figure_value(runs, figure, "baseline"),
        )
        if figure.key == "stuck_close_code":  # a code, not a quantity
            ours, theirs = (None if v is None else str(v) for v in (ours, theirs))
        numeric = all(isinstance(v, int | float) for v in (ours, theirs))
        q = ratio(ours, theirs) if numeric and figure.key != "p99_stuck_over_control" else None
        met = figure.check(ours, theirs, q) if figure.check else None
        rows.append(
            {
                "scenario": scenario,
                "figure": figure.label,
                "key": f"{figure.job}.{figure.key}",
                "roomchat": ours,
                "baseline": theirs,
                "ratio": q,
                "target": figure.target,
                "met": met,
            }
        )
    return rows


def ceiling(runs: Runs) -> dict[str, Any] | None:
    """The raw picows broadcast server's fanout figures, against the baseline's."""
    results = [r for r in runs.get(("fanout", "ceiling"), []) if "error" not in r]
    if not results:
        return None
    value = median([r.get("deliveries_per_s") for r in results])
    base = figure_value(runs, FIGURES[0], "baseline")
    ours = figure_value(runs, FIGURES[0], "roomchat")
    return {
        "deliveries_per_s": value,
        "vs_baseline": ratio(value, base if isinstance(base, float) else None),
        "roomchat_share_of_ceiling": ratio(ours if isinstance(ours, float) else None, value),
        "load_cpu": median([r.get("load_cpu") for r in results]),
    }


def ceiling_line(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""
    return (
        f"fanout ceiling: a raw picows broadcast server (bench/ceiling_app.py) took "
        f"{fmt(summary['deliveries_per_s'])} deliveries/s = {fmt(summary['vs_baseline'])}x the "
        f"baseline, with the load at {fmt(100 * (summary['load_cpu'] or 0))}% CPU; roomchat "
        f"reached {fmt(100 * (summary['roomchat_share_of_ceiling'] or 0))}% of it."
    )


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (so the README can show it as printed)."""
    head = ["scenario", "figure", "roomchat", "baseline", "ratio", "target", "met"]
    body = [
        [
            r["scenario"],
            r["figure"],
            fmt(r["roomchat"]),
            fmt(r["baseline"]),
            "" if r["ratio"] is None else f"{r['ratio']:.2f}×",
            r["target"],
            "" if r["met"] is None else fmt(r["met"]),
        ]
        for r in rows
    ]
    return _markdown(head, body, right={2, 3, 4})


def health_table(runs: Runs) -> str:
    """Was the server the bottleneck? Its CPU, what others took of its core, the load's CPU."""
    head = [
        "run",
        "server",
        "server CPU",
        "+ kernel irq",
        "others on its core",
        "load CPU",
        "others on load core",
        "reps",
    ]
    body = []
    for (job, target), results in sorted(runs.items()):
        ok = [r for r in results if "error" not in r]

        def share(key: str, rows: list[dict[str, Any]] = ok) -> str:
            value = median([r.get(key) for r in rows])
            return "—" if value is None else f"{value:.0%}"

        errors = len(results) - len(ok)
        reps = f"{len(ok)}" + (f" ({errors} failed)" if errors else "")
        keys = ["server_cpu", "server_core_irq", "server_core_stolen", "load_cpu"]
        body.append([job, target, *(share(k) for k in keys), share("load_core_stolen"), reps])
    return _markdown(head, body, right={2, 3, 4, 5, 6})


def _markdown(head: list[str], body: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(head), rule, *(line(row) for row in body)])
