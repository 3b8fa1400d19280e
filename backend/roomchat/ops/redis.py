"""Redis clients: the one place that says how roomchat talks to Redis.

Every client fails fast: one immediate retry (for a pooled connection that went stale
while idle), 2 s to connect, 5 s for a reply, ``str`` replies, and RESP2 (the broker's
subscriber reads pub/sub replies as RESP2 lists). Users differ only in what they name:
readiness waits less, the rate limiters wait for a connection rather than fail.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

#: Errors that mean "Redis is away" rather than a bug.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def redis_client(
    url: str,
    *,
    reply_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    pool_size: int | None = None,
    pool_wait_seconds: float = 5.0,
) -> Redis:
    """A client on a pool of its own, closed with it (``aclose``).

    ``pool_size``: at most that many connections, and a command waits up to
    ``pool_wait_seconds`` for a free one. ``None``: redis-py's own pool, which raises
    instead once 100 connections are busy.
    """
    options = {
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 1),
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": reply_timeout,
        "protocol": 2,
    }
    pool: ConnectionPool
    if pool_size is None:
        pool = ConnectionPool.from_url(url, **options)
    else:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=pool_wait_seconds, **options
        )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool too (from_pool: 5.0.1)
    return client
