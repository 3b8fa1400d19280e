"""Small statistics: percentiles of latencies, medians of repetitions."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def latency_summary_ms(latencies_ns: Sequence[int]) -> dict[str, float | None]:
    """p50, p99 and max of latencies given in nanoseconds, in milliseconds."""
    ms = [value / 1e6 for value in latencies_ns]
    return {
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else None,
    }


def median(values: Sequence[float | None]) -> float | None:
    """The median of the repetitions that produced a figure (None when none did)."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference
