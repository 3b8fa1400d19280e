"""Security headers on every HTTP response; a strict Content-Security-Policy for the page."""

from __future__ import annotations

import re
from functools import lru_cache

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roomchat.ops.origins import server_origin

#: No inline script or style, nothing from another origin, no framing.
POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src {connect}",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

#: What a CSP host-source can name (no IPv6 literal, nothing that could end the directive).
_CSP_ORIGIN = re.compile(r"https?://[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::[0-9]{1,5})?")


#: Longer than any DNS name (253) with a port: not a host, and not worth caching.
_HOST_CHARS = 260


def content_security_policy(scope_scheme: str, host: str) -> str:
    """The policy for a request with this scheme and Host header.

    The page's socket goes to its own server: ``'self'``, and that server's ``ws://`` or
    ``wss://`` origin spelled out, because older Safari does not let ``'self'`` match a
    WebSocket URL. The Host header is the client's to choose, but it only shapes the
    answer to that client; one that is no host name adds nothing.
    """
    return _policy(scope_scheme, host if len(host) <= _HOST_CHARS else "")


@lru_cache(maxsize=64)
def _policy(scope_scheme: str, host: str) -> str:
    connect = "'self'"
    origin = server_origin(scope_scheme, host)
    if origin is not None and _CSP_ORIGIN.fullmatch(origin):
        connect += " " + origin.replace("http", "ws", 1)
    return "; ".join(POLICY).format(connect=connect)


class SecurityHeaders:
    """ASGI middleware: adds ``HEADERS`` and the CSP to HTTP responses that lack them.

    A response that brings its own CSP (the API docs) keeps it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if "content-security-policy" not in headers:
                    host = Headers(scope=scope).get("host", "")
                    policy = content_security_policy(scope["scheme"], host)
                    headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
