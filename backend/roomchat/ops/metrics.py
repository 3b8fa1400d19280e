"""Prometheus metrics, in a registry of each app's own (tests build many apps).

Numbers are per process: with ``--workers N`` each worker counts its own sockets and
messages. Fan-out latency is the time from a message reaching a socket's queue (the room
listener hands it over as the broker delivers it) to that socket's writer having written
it: it grows when sockets are slow to take what the room sends them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


#: Why a handshake was refused, by the HTTP status API.md gives it.
REFUSAL_REASONS = {401: "token", 403: "origin", 422: "invalid", 429: "limit"}
FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.open_sockets = Gauge(
            "roomchat_open_sockets", "Sockets in a room, in this process", registry=registry
        )
        self.rooms = Gauge(
            "roomchat_rooms", "Rooms with sockets in this process", registry=registry
        )
        self.members = Gauge(
            "roomchat_members",
            "Users with a socket in a room, summed over rooms, in this process",
            registry=registry,
        )
        self.messages_received = Counter(
            "roomchat_messages_received",
            "Messages stored from clients (socket and HTTP)",
            registry=registry,
        )
        self.messages_delivered = Counter(
            "roomchat_messages_delivered", "Message frames written to sockets", registry=registry
        )
        self.fanout_seconds = Histogram(
            "roomchat_fanout_seconds",
            "From the oldest event of a batch entering a socket's outbox to the batch written",
            buckets=FANOUT_BUCKETS,
            registry=registry,
        )
        self.server_closes = Counter(
            "roomchat_server_closes",
            "Sockets roomchat closed, by close code (uvicorn's own 1009 is not counted)",
            ["code"],
            registry=registry,
        )
        self.queue_overflows = Counter(
            "roomchat_queue_overflows",
            "Sockets closed with 1013 because their queue overflowed",
            registry=registry,
        )
        self.handshakes_refused = Counter(
            "roomchat_handshakes_refused",
            "Socket handshakes refused: token (401), origin (403), invalid room or since (422), "
            "a per-user limit (429)",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "roomchat_rate_limited",
            "Messages refused for coming too fast, by socket or http",
            ["via"],
            registry=registry,
        )
        self.backend_errors = Counter(
            "roomchat_backend_errors",
            "Failures to store, to publish, of a room listener, or of a SQLite checkpoint",
            ["kind"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS.values():
            self.handshakes_refused.labels(reason)
        for via in ("socket", "http"):
            self.rate_limited.labels(via)
        for kind in ("store", "publish", "listener", "checkpoint"):
            self.backend_errors.labels(kind)

    def watch(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        """Read ``(sockets, rooms, members)`` from ``counts`` at each scrape."""
        self.open_sockets.set_function(lambda: counts()[0])
        self.rooms.set_function(lambda: counts()[1])
        self.members.set_function(lambda: counts()[2])

    def delivered(self, count: int, waited_since: float) -> None:
        """A socket's writer sent ``count`` messages; the batch began waiting at ``waited_since``.

        Counted once per batch, not per message, to keep the fan-out path lean: the
        histogram holds how long each batch's oldest event waited in its socket's outbox.
        """
        if count:
            self.messages_delivered.inc(count)
            self.fanout_seconds.observe(time.monotonic() - waited_since)

    def refused(self, status_code: int) -> None:
        self.handshakes_refused.labels(REFUSAL_REASONS.get(status_code, str(status_code))).inc()

    def closed(self, code: int) -> None:
        self.server_closes.labels(str(code)).inc()
        if code == 1013:
            self.queue_overflows.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
