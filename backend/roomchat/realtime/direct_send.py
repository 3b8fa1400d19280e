"""The server's own ASGI ``send`` for sockets, for the fan-out path.

FastAPI hands a WebSocket endpoint a ``send`` wrapped in two exception-handling closures
(Starlette's exception middleware and route), which matter for HTTP responses only, and
``WebSocket.send`` checks its state on every call. A socket's writer sends thousands of
prebuilt ``websocket.send`` messages a second, so this middleware, placed outside those
layers, keeps the server's own ``send`` in the scope for it. Accept and close still go
through ``WebSocket``, which keeps its state right.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

SCOPE_KEY = "roomchat.direct_send"


class KeepDirectSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = send
        await self.app(scope, receive, send)


def direct_send(websocket: WebSocket) -> Send:
    """The server's ``send`` when the middleware is installed, else ``WebSocket.send``."""
    send: Send = websocket.scope.get(SCOPE_KEY, websocket.send)
    return send
