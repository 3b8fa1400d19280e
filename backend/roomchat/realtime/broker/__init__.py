"""Brokers carry a room's events to every process that has members in it."""

from __future__ import annotations

from roomchat.realtime.broker.base import (
    GAP,
    Broker,
    BrokerUnavailableError,
    Gap,
    Presence,
    Subscription,
)

__all__ = ["GAP", "Broker", "BrokerUnavailableError", "Gap", "Presence", "Subscription"]
