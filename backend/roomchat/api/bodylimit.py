"""``ROOMCHAT_MAX_BODY_BYTES``: request bodies are capped while they stream in, before parsing.

A body past the limit is answered ``413`` and read no further, whatever its framing
(Content-Length or chunked) and whatever would parse it (JSON, a form). The answer
carries ``Connection: close``, so uvicorn closes the connection instead of reading the
rest of the body to get to the next request; the same goes for any answer given before
the body was read to its end (a 404 does not read the body it was sent).

Starlette 1.x has a ``RequestBodyLimitMiddleware``, but it answers in plain text, only
once the app reads (or answers), and keeps the connection.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = {"Connection": "close"}


class BodyTooLargeError(HTTPException):
    """Raised by ``receive`` past the limit. An HTTPException, so that FastAPI's body
    parsing passes it on and its handler answers it as JSON ``{"detail"}``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body larger than {limit} bytes", headers=CLOSE)


class BodyLimit:
    """ASGI middleware for HTTP requests; anything else passes through untouched."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        body_pending = chunked or bool(declared)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_pending
            if received > self.max_bytes:
                raise BodyTooLargeError(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
                body_pending = message.get("more_body", False)
            return message

        async def checked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body_pending:  # answered before the body's end: do not drain it
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        try:
            await self.app(scope, limited_receive, checked_send)
        except BodyTooLargeError:
            if started:
                raise
            await _too_large(self.max_bytes)(scope, receive, send)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent or unreadable), and whether chunked."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


def _too_large(limit: int) -> JSONResponse:
    error = BodyTooLargeError(limit)
    return JSONResponse({"detail": error.detail}, status_code=413, headers=error.headers)
