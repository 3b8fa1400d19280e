"""Security headers on every HTTP response; a strict Content-Security-Policy for the page."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: No inline script or style, nothing from another origin, no framing. `ws:`/`wss:` are
#: spelled out because older Safari does not let `'self'` match a WebSocket URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

#: FastAPI's interactive docs load Swagger UI and ReDoc with inline script from a CDN,
#: which the policy above would block; they get every header but that one.
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """ASGI middleware: adds ``HEADERS`` and the CSP to HTTP responses that lack them."""

    def __init__(self, app: ASGIApp, *, csp_exempt_paths: Iterable[str] = DOCS_PATHS) -> None:
        self.app = app
        self.csp_exempt_paths = tuple(csp_exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        with_csp = not path.startswith(self.csp_exempt_paths)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if with_csp:
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
