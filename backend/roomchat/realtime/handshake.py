"""The checks made before a socket is accepted: room name, origin, token."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket

from roomchat.accounts.security import InvalidTokenError
from roomchat.accounts.service import Principal
from roomchat.ops.origins import parse_origin, server_origin

#: Who a token speaks for; ``InvalidTokenError`` when it is missing, invalid or expired.
Authenticate = Callable[[str | None], Awaitable[Principal]]


class RoomChecks(Protocol):
    """What the handshake asks of the room manager (``realtime.manager.RoomManager``)."""

    async def has_issued(self, room: str, message_id: int) -> bool: ...

    async def is_new(self, room: str) -> bool: ...

    async def claim_socket(self, user: str, limit: int) -> bool: ...


class Quota(Protocol):
    async def allow(self, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Gate:
    """Everything ``admit`` checks a socket against."""

    room_pattern: re.Pattern[str]
    allowed_origins: list[str]
    authenticate: Authenticate
    rooms: RoomChecks
    new_rooms: Quota
    rooms_per_user: int
    max_sockets_per_user: int


@dataclass(frozen=True, slots=True)
class Admission:
    principal: Principal
    since: int | None


class HandshakeRefusedError(Exception):
    """Answered with an HTTP status instead of an upgrade."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


async def admit(websocket: WebSocket, room: str, gate: Gate) -> Admission:
    """Return who may join, or raise ``HandshakeRefusedError`` (422, 403, 401, 429).

    A ``since`` beyond the room's newest id is refused: the socket would drop every live
    message up to it (ids are global across rooms, so another room's id does this).
    """
    if not gate.room_pattern.fullmatch(room):
        raise HandshakeRefusedError(422, "room name must be 1-64 of A-Z a-z 0-9 _ -")
    since = _since(websocket.query_params.get("since"))
    if not origin_allowed(websocket, gate.allowed_origins):
        raise HandshakeRefusedError(403, "origin not allowed")
    try:
        principal = await gate.authenticate(websocket.query_params.get("token"))
    except InvalidTokenError:
        raise HandshakeRefusedError(401, "missing, invalid or expired token") from None
    if since is not None and not await gate.rooms.has_issued(room, since):
        raise HandshakeRefusedError(422, "since is beyond the room's newest message id")
    if await gate.rooms.is_new(room) and not await gate.new_rooms.allow(str(principal.user_id)):
        raise HandshakeRefusedError(429, f"at most {gate.rooms_per_user} new rooms an hour")
    # Last: a claim is released by whoever admitted the socket, once it closes.
    limit = gate.max_sockets_per_user
    if not await gate.rooms.claim_socket(principal.username, limit):
        raise HandshakeRefusedError(429, f"at most {limit} sockets per user")
    return Admission(principal=principal, since=since)


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """No Origin (an API client), the server's own origin, or one listed in settings.

    Origins are compared whole, scheme included: a ``wss://`` socket's own page is
    ``https://`` on the same host and port. Behind a TLS-terminating proxy uvicorn takes
    the scheme from its ``X-Forwarded-Proto`` (``--forwarded-allow-ips``).
    """
    header = websocket.headers.get("origin")
    if header is None:
        return True
    origin = parse_origin(header)
    if origin is None:
        return False
    if origin in allowed:
        return True
    return origin == server_origin(websocket.scope["scheme"], websocket.headers.get("host", ""))


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise HandshakeRefusedError(422, "since must be a message id (a whole number)")
    return int(value)
