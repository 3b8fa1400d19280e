"""Security headers: a strict Content-Security-Policy on the page, the rest everywhere."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from tests.helpers import SECURITY_HEADERS
from tests.live import LiveServer

#: Headers are the same whatever stores the messages: these run once.
pytestmark = pytest.mark.embedded_only


def directives(policy: str) -> dict[str, list[str]]:
    parsed = (part.split() for part in policy.split(";") if part.strip())
    return {name: values for name, *values in parsed}


async def test_the_page_gets_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/static/app.css"),
        ("GET", "/api/users/me"),
        ("GET", "/no-such-page"),
        ("POST", "/api/auth/token"),
    ],
)
async def test_every_response_gets_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (path, name)
    assert "content-security-policy" in response.headers


def inline_sources(page: str, tag: str) -> list[str]:
    """The CSP hash sources of the page's inline ``<script>`` or ``<style>`` elements."""
    bodies = re.findall(rf"<{tag}(?![^>]*\bsrc=)[^>]*>(.*?)</{tag}>", page, flags=re.S)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in bodies
    ]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_docs_run_only_their_own_packaged_script(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    # Script: this origin's files, and the page's own inline bootstrap by its hash.
    scripts = policy["script-src"]
    assert scripts[0] == "'self'"
    assert sorted(scripts[1:]) == sorted(inline_sources(response.text, "script"))
    for source in (s for values in policy.values() for s in values):
        assert "://" not in source, source
        assert source not in ("*", "https:", "http:"), source
        assert source not in ("'unsafe-eval'", "'unsafe-hashes'"), source
    assert "'unsafe-inline'" not in scripts
    # Every asset the page loads comes from this server, and is there.
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    for asset in assets:
        assert asset.startswith("/"), asset
        assert (await client.get(asset)).status_code == 200, asset
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


async def test_the_page_may_open_sockets_only_to_its_own_server(live: LiveServer) -> None:
    host = f"127.0.0.1:{live.port}"
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        plain = directives((await client.get("/")).headers["content-security-policy"])
        assert plain["connect-src"] == ["'self'", f"ws://{host}"]
        # Behind a TLS proxy (trusted: loopback), the page is https and its socket wss.
        proxied = await client.get("/", headers={"X-Forwarded-Proto": "https"})
        policy = directives(proxied.headers["content-security-policy"])
        assert policy["connect-src"] == ["'self'", f"wss://{host}"]
        named = await client.get("/", headers={"Host": "chat.example.com"})
        policy = directives(named.headers["content-security-policy"])
        assert policy["connect-src"] == ["'self'", "ws://chat.example.com"]


@pytest.mark.parametrize(
    "host",
    ["evil.example; script-src *", "evil.example 'unsafe-inline'", "a,b", "[::1]:80", "x/y"],
)
async def test_a_host_that_is_no_host_name_adds_nothing_to_the_policy(
    live: LiveServer, host: str
) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        response = await client.get("/", headers={"Host": host})
    policy = directives(response.headers["content-security-policy"])
    assert policy["connect-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert "evil" not in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/api/rooms/", "/healthz/", "/docs/", "/api/users/me/"])
async def test_a_trailing_slash_never_redirects_to_the_host_header(
    live: LiveServer, path: str
) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as client:
        response = await client.get(path, headers={"Host": "evil.example"})
    assert "location" not in response.headers
    assert response.status_code == 404
    assert "detail" in response.json()
