"""The fault scenarios' table: one row per scenario, as ``counting.count`` made it."""

from __future__ import annotations

from typing import Any

from bench.report import _markdown, fmt

#: (heading, key of the row)
COLUMNS = [
    ("scenario", "scenario"),
    ("sent", "sent"),
    ("acked", "acknowledged"),
    ("delivered (min)", "delivered_min"),
    ("all acked delivered", "delivered_all"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("out of order", "out_of_order"),
    ("stored, not acked", "stored_unacknowledged"),
    ("no answer", "unanswered"),
    ("recovery (s)", "recovery_s"),
    ("presence right", "presence_right"),
    ("ack p50 (s)", "ack_p50_s"),
    ("ack max (s)", "ack_max_s"),
]


def cell(key: str, value: Any) -> str:
    if key == "recovery_s" and value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a count, never "1.00"
    return fmt(value)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (the README shows it as printed); a failed scenario says why."""
    body = []
    for row in rows:
        if "error" in row:
            why = f"failed: {row['error']}"[:80]
            body.append([row["scenario"], why] + [""] * (len(COLUMNS) - 2))
        else:
            body.append([cell(key, row.get(key)) for _, key in COLUMNS])
    right = set(range(1, len(COLUMNS)))
    return _markdown([heading for heading, _ in COLUMNS], body, right)


def failed(rows: list[dict[str, Any]]) -> list[str]:
    """The scenarios that broke what issue 15 asks to hold: a message lost, duplicated or
    out of order, a member list left wrong, no recovery; or that could not be run (or
    whose clients failed, so that their count cannot be trusted)."""
    return [
        row["scenario"]
        for row in rows
        if "error" in row
        or row.get("lost")
        or row.get("duplicated")
        or row.get("out_of_order")
        or row.get("presence_right") is False
        or row.get("recovery_s", 0) is None
        or row.get("harness_errors")
    ]
