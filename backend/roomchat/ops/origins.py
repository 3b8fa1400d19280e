"""Web origins, ``scheme://host[:port]``, in the one spelling a browser's Origin header uses.

Lowercase scheme and host, no default port, nothing else: so that two origins are the same
exactly when their strings are equal.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The page's scheme for a request's scope scheme (a socket's page is http(s) too).
_PAGE_SCHEMES = {"http": "http", "ws": "http", "https": "https", "wss": "https"}


def parse_origin(value: str) -> str | None:
    """``value`` as an origin (``HTTPS://Chat.Example:443/`` → ``https://chat.example``),
    or None when it is none (``null``, a path, a user name, another scheme, a bad port)."""
    parts = urlsplit(value.strip().rstrip("/"))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return None
    return _join(scheme, parts.netloc)


def server_origin(scope_scheme: str, host: str) -> str | None:
    """The origin of a page served for a request with this scope scheme and Host header
    (uvicorn sets the scheme from a trusted proxy's X-Forwarded-Proto); None if the Host
    header is not a host."""
    scheme = _PAGE_SCHEMES.get(scope_scheme)
    return _join(scheme, host) if scheme else None


def _join(scheme: str, netloc: str) -> str | None:
    if not netloc or any(c in netloc for c in "@/\\?# \t,;'\"") or netloc.endswith(":"):
        return None
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    host = parts.netloc.lower()
    if port is not None:
        host = host.rsplit(":", 1)[0]
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
