"""Presence in Redis: who is online in which room, across every worker and host.

Each process is a *worker* with a random id. It records its connections under its id and
renews a heartbeat (a deadline in a sorted set, on Redis's clock) every ``ttl / 3``
seconds. Any worker sweeps workers whose deadline passed, as one that died without saying
goodbye would: their connections are removed and ``leave`` is published for users left
with none, so a dead worker's members are gone within about ``ttl * 4 / 3`` seconds.

Every change is one Lua script, so counts stay exact whatever the interleaving. A worker
keeps its own connections in memory too; when Redis lost them (a restart, or a sweep
while this worker was cut off) or a call failed, it writes them again ("resync").

After an outage, ``recover`` resyncs at once and then waits until the other workers have
too: each heartbeat tells a worker who its peers are, and a peer's ``alive:`` key is back
once it has rewritten its connections. Until then a member list read from Redis would
lack the peer's members, and sockets told so would see them leave and come back.

Keys, under ``{prefix}:presence:``: ``workers`` (zset: worker → deadline, ms),
``w:{worker}`` (set of ``room\\nuser\\nconnection``), ``alive:{worker}`` (written by a
resync), ``r:{room}`` (hash: user → connections), ``rooms`` (hash: room → users) and
``s:{worker}`` (hash: user → sockets open on that worker, for the per-user cap: a claim
adds up every live worker's count, so it is exact across workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Collection
from typing import Any, cast
from uuid import uuid4

from roomchat.ops.redis import REDIS_ERRORS, redis_client
from roomchat.realtime import events
from roomchat.realtime.broker.base import BrokerUnavailableError
from roomchat.realtime.broker.redis import room_channel
from roomchat.realtime.tasks import spawn

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0
#: How often ``recover`` looks whether the other workers have rewritten their presence.
PEERS_POLL_SECONDS = 0.05

_COMMON = """
local P = ARGV[1] .. ':presence:'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split(entry)
  local a = string.find(entry, '\\n', 1, true)
  local b = string.find(entry, '\\n', a + 1, true)
  return string.sub(entry, 1, a - 1), string.sub(entry, a + 1, b - 1)
end
local function inc(room, user)
  if redis.call('HINCRBY', P .. 'r:' .. room, user, 1) == 1 then
    redis.call('HINCRBY', P .. 'rooms', room, 1)
    return true
  end
  return false
end
local function dec(room, user)
  local key = P .. 'r:' .. room
  if redis.call('HINCRBY', key, user, -1) > 0 then return false end
  redis.call('HDEL', key, user)
  if redis.call('HINCRBY', P .. 'rooms', room, -1) <= 0 then
    redis.call('HDEL', P .. 'rooms', room)
  end
  return true
end
local function forget_worker(worker, out)
  local key = P .. 'w:' .. worker
  for _, entry in ipairs(redis.call('SMEMBERS', key)) do
    local room, user = split(entry)
    if dec(room, user) then
      table.insert(out, 'leave'); table.insert(out, room); table.insert(out, user)
    end
  end
  redis.call('DEL', key, P .. 'alive:' .. worker, P .. 's:' .. worker)
  redis.call('ZREM', P .. 'workers', worker)
end
"""

# ARGV: prefix, worker, ttl_ms, entry -> 1 when the user's first connection in the room
_ADD = """
redis.call('ZADD', P .. 'workers', 'NX', now_ms() + tonumber(ARGV[3]), ARGV[2])
if redis.call('SADD', P .. 'w:' .. ARGV[2], ARGV[4]) == 0 then return 0 end
local room, user = split(ARGV[4])
if inc(room, user) then return 1 end
return 0
"""

# ARGV: prefix, worker, entry -> 1 when it was the user's last connection in the room
_REMOVE = """
if redis.call('SREM', P .. 'w:' .. ARGV[2], ARGV[3]) == 0 then return 0 end
local room, user = split(ARGV[3])
if dec(room, user) then return 1 end
return 0
"""

# ARGV: prefix, worker, ttl_ms -> {1 while Redis still has what this worker wrote, or 0;
# then every other live worker}
_HEARTBEAT = """
local now = now_ms()
redis.call('ZADD', P .. 'workers', now + tonumber(ARGV[3]), ARGV[2])
local out = {redis.call('EXISTS', P .. 'alive:' .. ARGV[2])}
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers', now, '+inf')) do
  if worker ~= ARGV[2] then table.insert(out, worker) end
end
return out
"""

# ARGV: prefix, worker, ttl_ms, entry... -> {'join'|'leave', room, user, ...}
_RESYNC = """
local key = P .. 'w:' .. ARGV[2]
local wanted, out = {}, {}
for i = 4, #ARGV do wanted[ARGV[i]] = true end
for _, entry in ipairs(redis.call('SMEMBERS', key)) do
  if wanted[entry] then
    wanted[entry] = nil
  else
    redis.call('SREM', key, entry)
    local room, user = split(entry)
    if dec(room, user) then
      table.insert(out, 'leave'); table.insert(out, room); table.insert(out, user)
    end
  end
end
for entry in pairs(wanted) do
  redis.call('SADD', key, entry)
  local room, user = split(entry)
  if inc(room, user) then
    table.insert(out, 'join'); table.insert(out, room); table.insert(out, user)
  end
end
redis.call('SET', P .. 'alive:' .. ARGV[2], '1')
redis.call('ZADD', P .. 'workers', now_ms() + tonumber(ARGV[3]), ARGV[2])
return out
"""

# ARGV: prefix, worker, ttl_ms, user, limit -> 1 when the socket is counted, 0 at the cap
_CLAIM = """
local now = now_ms()
redis.call('ZADD', P .. 'workers', 'NX', now + tonumber(ARGV[3]), ARGV[2])
local total = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers', now, '+inf')) do
  total = total + (tonumber(redis.call('HGET', P .. 's:' .. worker, ARGV[4])) or 0)
end
if total >= tonumber(ARGV[5]) then return 0 end
redis.call('HINCRBY', P .. 's:' .. ARGV[2], ARGV[4], 1)
return 1
"""

# ARGV: prefix, worker, user
_RELEASE = """
local key = P .. 's:' .. ARGV[2]
if redis.call('HINCRBY', key, ARGV[3], -1) <= 0 then redis.call('HDEL', key, ARGV[3]) end
return 0
"""

# ARGV: prefix, worker, user, count, user, count... -> this worker's socket counts, anew
_RESYNC_SOCKETS = """
local key = P .. 's:' .. ARGV[2]
redis.call('DEL', key)
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
return 0
"""

# ARGV: prefix -> leaves of every worker whose heartbeat deadline passed
_SWEEP = """
local out = {}
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers', '-inf', now_ms())) do
  forget_worker(worker, out)
end
return out
"""

# ARGV: prefix, worker -> this worker's leaves, as it shuts down
_RETIRE = """
local out = {}
forget_worker(ARGV[2], out)
return out
"""


class RedisPresence:
    def __init__(self, url: str, *, prefix: str, ttl: float = 15.0) -> None:
        self._redis = redis_client(url)
        self._prefix = prefix
        self.worker = uuid4().hex
        self._ttl, self._ttl_ms = ttl, str(int(ttl * 1000))
        self._interval = ttl / 3
        self._peers: list[str] = []  # the other live workers, at the last heartbeat
        self._local: dict[str, str] = {}  # connection id -> entry
        self._sockets: Counter[str] = Counter()  # user -> sockets claimed here
        self._dirty = False  # a change may not have reached Redis: resync
        self._lock = asyncio.Lock()
        register = self._redis.register_script
        self._add, self._remove = register(_COMMON + _ADD), register(_COMMON + _REMOVE)
        self._heartbeat = register(_COMMON + _HEARTBEAT)
        self._resync_script = register(_COMMON + _RESYNC)
        self._sweep, self._retire = register(_COMMON + _SWEEP), register(_COMMON + _RETIRE)
        self._claim, self._release = register(_COMMON + _CLAIM), register(_COMMON + _RELEASE)
        self._resync_sockets = register(_COMMON + _RESYNC_SOCKETS)
        self._stopping = asyncio.Event()
        self._task = spawn(self._maintain(), name="roomchat-presence")

    async def add(self, room: str, user: str, connection_id: str) -> bool:
        entry = f"{room}\n{user}\n{connection_id}"
        async with self._lock:
            self._local[connection_id] = entry
            args = [self._prefix, self.worker, self._ttl_ms, entry]
            return await self._change(self._add, args)

    async def remove(self, room: str, user: str, connection_id: str) -> bool:
        async with self._lock:
            entry = self._local.pop(connection_id, None)
            if entry is None:
                return False
            return await self._change(self._remove, [self._prefix, self.worker, entry])

    async def members(self, room: str) -> list[str]:
        try:
            users = cast(list[str], await self._redis.hkeys(f"{self._prefix}:presence:r:{room}"))
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc
        return sorted(users)

    async def members_of(self, rooms: Collection[str]) -> dict[str, list[str]]:
        names = list(rooms)
        if not names:
            return {}
        try:
            async with self._redis.pipeline(transaction=True) as pipe:  # one moment for all
                for room in names:
                    pipe.hkeys(f"{self._prefix}:presence:r:{room}")
                replies = cast(list[list[str]], await pipe.execute())
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc
        return {room: sorted(users) for room, users in zip(names, replies, strict=True)}

    async def rooms(self) -> dict[str, int]:
        try:
            key = f"{self._prefix}:presence:rooms"
            counts = cast(dict[str, str], await self._redis.hgetall(key))
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc
        return {room: int(count) for room, count in counts.items() if int(count) > 0}

    async def claim_socket(self, user: str, limit: int) -> bool:
        async with self._lock:
            args = [self._prefix, self.worker, self._ttl_ms, user, str(limit)]
            try:
                claimed = bool(await self._claim(args=args))
            except REDIS_ERRORS as exc:
                # Counted here until Redis is back (the resync writes it): per worker.
                log.info("socket cap counted in this worker only (Redis unavailable): %r", exc)
                self._dirty = True
                claimed = self._sockets[user] < limit
            if claimed:
                self._sockets[user] += 1
            return claimed

    async def release_socket(self, user: str) -> None:
        async with self._lock:
            self._sockets[user] -= 1
            if self._sockets[user] <= 0:
                del self._sockets[user]
            await self._change(self._release, [self._prefix, self.worker, user])

    async def close(self) -> None:
        # Not a cancel: redis-py may turn a cancelled command into a TimeoutError, which
        # the loop would take for an outage and carry on.
        self._stopping.set()
        try:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("presence maintenance did not stop in time")
        try:
            await self._announce(await self._retire(args=[self._prefix, self.worker]))
        except REDIS_ERRORS as exc:
            log.info("could not retire this worker's presence: %r", exc)
        await self._redis.aclose()

    async def _change(self, script: Any, args: list[str]) -> bool:
        try:
            return bool(await script(args=args))
        except REDIS_ERRORS as exc:
            log.info("presence change deferred until Redis is back: %r", exc)
            self._dirty = True
            return False

    # -- heartbeat, resync and sweep ---------------------------------------------------

    async def _maintain(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                await self._tick()
                if failing:
                    log.info("presence is back in Redis")
                failing = False
            except REDIS_ERRORS as exc:
                if not failing:
                    log.warning("presence heartbeat failed; retrying: %r", exc)
                failing = self._dirty = True
            except Exception:
                log.exception("presence maintenance failed; retrying")
                self._dirty = True
            delay = min(self._interval, 0.5) if self._dirty else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _tick(self) -> None:
        alive, *peers = await self._heartbeat(args=[self._prefix, self.worker, self._ttl_ms])
        if alive:  # (a Redis that lost this worker may not know every peer yet either)
            self._peers = peers
        if not alive or self._dirty:
            await self.resync()
        await self._announce(await self._sweep(args=[self._prefix]))

    async def recover(self) -> None:
        try:
            await self.resync()
            peers = [f"{self._prefix}:presence:alive:{peer}" for peer in self._peers]
            deadline = asyncio.get_running_loop().time() + self._ttl  # past it, a peer is dead
            while peers and await self._redis.exists(*peers) < len(peers):
                if asyncio.get_running_loop().time() > deadline:
                    log.info("presence recovered without %d silent workers", len(peers))
                    return
                await asyncio.sleep(PEERS_POLL_SECONDS)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailableError(f"Redis is unavailable: {exc}") from exc

    async def resync(self) -> None:
        """Make Redis hold exactly this worker's connections; announce what changed."""
        async with self._lock:
            self._dirty = False
            entries = list(self._local.values())
            counts = [str(item) for pair in self._sockets.items() for item in pair]
            try:
                await self._resync_sockets(args=[self._prefix, self.worker, *counts])
                changes = await self._resync_script(
                    args=[self._prefix, self.worker, self._ttl_ms, *entries]
                )
            except BaseException:
                self._dirty = True
                raise
        await self._announce(changes)

    async def _announce(self, changes: list[str]) -> None:
        if not changes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in range(0, len(changes), 3):
                kind, room, user = changes[index : index + 3]
                event = events.join_event if kind == "join" else events.leave_event
                payload = events.room_payload(event(room, user))
                pipe.publish(room_channel(self._prefix, room), payload)
            await pipe.execute()
