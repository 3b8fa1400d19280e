"""Choose the broker and presence from the settings: memory, or Redis when a URL is set."""

from __future__ import annotations

from roomchat.config import Settings
from roomchat.realtime.broker import Broker, Presence


def create_backend(settings: Settings) -> tuple[Broker, Presence]:
    """Build them inside the running event loop (the Redis ones start background tasks)."""
    url = settings.redis_url
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("ROOMCHAT_REDIS_URL must start with redis://, rediss:// or unix://")
        from roomchat.realtime.broker.redis import RedisBroker
        from roomchat.realtime.broker.redis_presence import RedisPresence

        prefix = settings.redis_prefix
        return (
            RedisBroker(url, prefix=prefix),
            RedisPresence(url, prefix=prefix, ttl=settings.presence_ttl_seconds),
        )
    from roomchat.realtime.broker.memory import MemoryBroker, MemoryPresence

    return MemoryBroker(), MemoryPresence()
