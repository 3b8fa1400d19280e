"""Choose the broker and presence from the settings: memory, or Redis when a URL is set."""

from __future__ import annotations

from roomchat.config import Settings
from roomchat.realtime.broker import Broker, Presence


def create_backend(settings: Settings) -> tuple[Broker, Presence]:
    if settings.redis_url:
        raise NotImplementedError("the Redis backend is not built yet (ROOMCHAT_REDIS_URL)")
    from roomchat.realtime.broker.memory import MemoryBroker, MemoryPresence

    return MemoryBroker(), MemoryPresence()
