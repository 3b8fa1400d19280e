"""A real uvicorn serving an app on a loopback port, in a thread of its own.

The server has its own event loop, like a real server, so a test client (asyncio,
Playwright) never shares a loop with it. ``stop()`` then ``start()`` restarts it on the
same port with the same settings (and so the same database).
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from roomchat.config import Settings
from roomchat.limits.buckets import Clock
from roomchat.main import create_app
from roomchat.server import uvicorn_options
from tests.helpers import free_port

START_TIMEOUT = 20.0

#: uvicorn options for the two ways a socket's events go out: roomchat's own protocols
#: with its frame sink (the default), and plain ASGI under uvicorn's stock protocols (as
#: ``uvicorn roomchat.main:app`` serves it), compression on as a browser would ask.
PLAIN_ASGI: dict[str, Any] = {
    "http": "auto",
    "ws": "websockets-sansio",
    "ws_per_message_deflate": True,
}
SEND_PATHS = [pytest.param({}, id="frame-sink"), pytest.param(PLAIN_ASGI, id="plain-asgi")]


class LiveServer:
    def __init__(
        self,
        settings: Settings,
        *,
        send_buffer_bytes: int | None = None,
        app_factory: Callable[[Settings], FastAPI] | None = None,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        #: How the app is built: ``create_app`` with the throttles' ``clock`` by default.
        self._app_factory = app_factory or functools.partial(create_app, clock=clock)
        self._send_buffer_bytes = send_buffer_bytes
        self._overrides = overrides
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        options = uvicorn_options(self.settings) | {"log_level": "warning"} | self._overrides
        config = uvicorn.Config(
            self._app_factory(self.settings), host="127.0.0.1", port=self.port, **options
        )
        server = uvicorn.Server(config)
        started = threading.Event()
        original_startup = server.startup

        async def startup(sockets: Any = None) -> None:
            await original_startup(sockets)
            started.set()

        def run() -> None:
            try:
                server.run(sockets=[self._listen()])
            finally:
                started.set()  # also when startup failed: the caller sees server.started

        server.startup = startup  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(target=run, name="live-uvicorn", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT) or not server.started:
            raise RuntimeError(f"uvicorn did not start on port {self.port}")

    def _listen(self) -> socket.socket:
        """The listening socket; accepted sockets inherit its send buffer size on Linux."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._send_buffer_bytes is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(512)
        return listener

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("uvicorn did not stop")
        self._server = self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()
