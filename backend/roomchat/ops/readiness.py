"""Readiness: can this process serve? The store answers, and Redis when it is configured."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


async def check_store(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: the store does not answer: %s", type(exc).__name__)
        return False
    return True


async def check_redis(url: str) -> bool:
    from roomchat.ops.redis import redis_client

    client = redis_client(
        url, reply_timeout=CHECK_TIMEOUT_SECONDS, connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await client.ping()
    except Exception as exc:
        log.warning("readiness: Redis does not answer: %s", type(exc).__name__)
        return False
    finally:
        await client.aclose()
    return True


async def readiness(engine: AsyncEngine, redis_url: str | None) -> dict[str, str]:
    """Each check by name, ``ok`` or ``failed``."""
    checks = {"store": await check_store(engine)}
    if redis_url:
        checks["redis"] = await check_redis(redis_url)
    return {name: "ok" if passed else "failed" for name, passed in checks.items()}
