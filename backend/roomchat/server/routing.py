"""Sockets routed ahead of FastAPI: a socket lives for hours, and each layer it passed
through on the way in (exception handling, the exit stack, dependency solving), none of
which a socket uses, would stay on its task's stack all that time, a few KiB per socket,
and cost time on every connect. The app's outermost middleware, but for error handling
and the security headers.
"""

from __future__ import annotations

import logging

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from roomchat.api.ws import ROUTE
from roomchat.realtime.sink import RAW_SEND

log = logging.getLogger(__name__)


class ServeSocketsFirst:
    """Hands ``/ws/{room}`` sockets straight to ``room_socket``; the rest goes on to FastAPI.

    The server's own ``send`` is kept in the scope for the socket's writer: thousands
    of prebuilt messages a second skip ``WebSocket.send``'s state checks.

    A client that leaves during the handshake (before its session reads, which hears of
    it as a disconnect) makes an accept or a first frame raise ``WebSocketDisconnect``:
    that is a client leaving, not an error of the server's, and anyone can do it, so it
    is logged at debug level, not as uvicorn's "Exception in ASGI application".
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            match, child_scope = ROUTE.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope[RAW_SEND] = send
                try:
                    await ROUTE.handle(scope, receive, send)
                except WebSocketDisconnect as gone:
                    log.debug("client left during the handshake", extra={"code": gone.code})
                return
        await self.app(scope, receive, send)
