"""Every WebSocket close code roomchat uses, named as API.md describes them."""

from __future__ import annotations

from typing import NamedTuple

NORMAL = 1000
GOING_AWAY = 1001  # the server is shutting down: reconnect with since=
POLICY_VIOLATION = 1008  # the token expired or the account was deleted, or repeated abuse
MESSAGE_TOO_BIG = 1009  # a frame over ROOMCHAT_MAX_FRAME_BYTES
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012  # uvicorn's own code when it restarts: reconnect with since=
TRY_AGAIN_LATER = 1013  # the client was too slow: its outgoing queue overflowed


class Close(NamedTuple):
    """How the server ends a socket: the code, and a reason a client can show or log."""

    code: int
    reason: str


TOKEN_EXPIRED = Close(POLICY_VIOLATION, "token expired")
SESSION_ENDED = Close(POLICY_VIOLATION, "session ended")  # the account was deleted
ABUSE = Close(POLICY_VIOLATION, "too many messages: slow down")
FRAME_TOO_BIG = Close(MESSAGE_TOO_BIG, "frame too large")
SERVER_ERROR = Close(INTERNAL_ERROR, "server error")

_REASONS = {
    GOING_AWAY: "server shutting down",
    INTERNAL_ERROR: SERVER_ERROR.reason,
    TRY_AGAIN_LATER: "too slow: your queue overflowed",
}


def close_for(code: int) -> Close:
    """The ``Close`` for a code the room manager drops a socket with."""
    return Close(code, _REASONS.get(code, ""))
