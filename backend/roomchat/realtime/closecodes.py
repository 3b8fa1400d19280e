"""Every WebSocket close code roomchat uses, named as API.md describes them."""

from __future__ import annotations

NORMAL = 1000
GOING_AWAY = 1001  # the server is shutting down: reconnect with since=
POLICY_VIOLATION = 1008  # the token expired during the session, or repeated abuse
MESSAGE_TOO_BIG = 1009  # a frame over ROOMCHAT_MAX_FRAME_BYTES
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012  # uvicorn's own code when it restarts: reconnect with since=
TRY_AGAIN_LATER = 1013  # the client was too slow: its outgoing queue overflowed
