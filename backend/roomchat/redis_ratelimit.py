"""Token buckets in Redis, so that N workers on M hosts count one limit together.

One Lua script refills and takes atomically on Redis's clock (hosts' clocks may differ).
While Redis is away each worker falls back to its own buckets: limits stay, only per
worker, rather than letting everything through or refusing everyone.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from roomchat.ratelimit import KeyedRateLimiter
from roomchat.realtime.broker.redis import REDIS_ERRORS

log = logging.getLogger(__name__)

# KEYS[1]: the bucket; ARGV: rate (per second), burst, take (1 or 0) -> {taken, wait seconds}
_TAKE = """
local rate, burst, take = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or burst
local stamp = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local taken = 0
if take and tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, tostring(wait)}
"""


class RedisRateLimiter:
    """Buckets under ``{prefix}:ratelimit:{name}:{key}``, shared by every worker."""

    def __init__(self, client: Redis, *, prefix: str, name: str, rate: float, burst: int) -> None:
        self._script = client.register_script(_TAKE)
        self._key = f"{prefix}:ratelimit:{name}:"
        self._rate, self._burst = rate, burst
        self._fallback = KeyedRateLimiter(rate=rate, burst=burst)

    async def allow(self, key: str) -> bool:
        result = await self._run(key, take=True)
        return self._fallback.allow(key) if result is None else bool(result[0])

    async def retry_after(self, key: str) -> float:
        result = await self._run(key, take=False)
        return self._fallback.retry_after(key) if result is None else float(result[1])

    async def _run(self, key: str, *, take: bool) -> Any:
        args = [repr(self._rate), str(self._burst), "1" if take else "0"]
        try:
            return await self._script(keys=[self._key + key], args=args)
        except REDIS_ERRORS as exc:
            log.info("rate limit counted in this worker only (Redis unavailable): %r", exc)
            return None
