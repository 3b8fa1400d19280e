"""Brokers carry a room's events to every process that has members in it."""

from __future__ import annotations

from roomchat.realtime.broker.base import Broker, Presence, Subscription

__all__ = ["Broker", "Presence", "Subscription"]
