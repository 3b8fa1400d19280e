"""Token buckets in Redis, so that N workers on M hosts count one limit together.

One Lua script refills and takes (or gives back) atomically on Redis's clock (hosts'
clocks may differ); a test may hand in a clock of its own instead. While Redis is away
each worker falls back to its own buckets: limits stay, only per worker, rather than
letting everything through or refusing everyone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis

from roomchat.limits.buckets import Clock, KeyedRateLimiter
from roomchat.ops.redis import REDIS_ERRORS

log = logging.getLogger(__name__)


# KEYS[1]: the bucket; ARGV: rate (per second), burst, op, [now]. op is 'take', 'peek'
# or 'refund' (give one back, up to the burst). Returns {taken, wait seconds}: wait is
# how long until one token is there, after the op.
_SCRIPT = """
local rate, burst, op = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or burst
local stamp = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local taken = 0
if op == 'take' and tokens >= 1 then
  tokens = tokens - 1
  taken = 1
elseif op == 'refund' then
  tokens = math.min(burst, tokens + 1)
end
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
-- %.17g: tostring keeps 14 digits, and refills lost at each step add up
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, string.format('%.17g', wait)}
"""


class RedisRateLimiter:
    """Buckets under ``{prefix}:ratelimit:{name}:{key}``, shared by every worker."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        name: str,
        rate: float,
        burst: int,
        clock: Clock | None = None,
    ) -> None:
        self._script = client.register_script(_SCRIPT)
        self._key = f"{prefix}:ratelimit:{name}:"
        self._rate, self._burst = rate, burst
        self._clock = clock  # None: Redis's own clock
        self._fallback = KeyedRateLimiter(rate=rate, burst=burst, clock=clock or time.monotonic)

    async def allow(self, key: str) -> bool:
        result = await self._run(key, "take")
        return self._fallback.allow(key) if result is None else bool(result[0])

    async def retry_after(self, key: str) -> float:
        result = await self._run(key, "peek")
        return self._fallback.retry_after(key) if result is None else float(result[1])

    async def acquire(self, key: str) -> float:
        result = await self._run(key, "take")
        if result is None:
            return self._fallback.acquire(key)
        return 0.0 if int(result[0]) else max(float(result[1]), 1e-3)

    async def refund(self, key: str) -> None:
        if await self._run(key, "refund") is None:
            self._fallback.refund(key)

    async def _run(self, key: str, op: str) -> Any:
        args = [repr(self._rate), str(self._burst), op]
        if self._clock is not None:
            args.append(repr(self._clock()))
        try:
            return await self._script(keys=[self._key + key], args=args)
        except REDIS_ERRORS as exc:
            log.info("rate limit counted in this worker only (Redis unavailable): %r", exc)
            return None
