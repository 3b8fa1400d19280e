"""How a socket's bytes leave, as the real-time code sees it: no server's internals here.

A room's event is the same bytes for every member (server frames are unmasked), so it is
framed once (``text_frame``) and, where the server offers one, handed to each member's
``FrameSink``: the server writes it straight to that socket's transport, with no
coroutine per recipient. ``roomchat serve`` offers a sink in the scope's extensions
(``server.ws_protocol``); under any other server there is none and sockets send through
ASGI, with the server's own ``send`` kept in the scope under ``RAW_SEND``.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.types import Scope
from websockets.frames import Frame, Opcode

#: The scope extension under which a server offers ``{"sink": FrameSink}``.
EXTENSION = "roomchat.frames"
#: The scope key of the server's own ASGI ``send`` (set where sockets are routed).
RAW_SEND = "roomchat.raw_send"
#: API.md: "a client that does not finish the close within 5 s is cut off".
CLOSE_TIMEOUT_SECONDS = 5.0


class FrameSink(Protocol):
    """Writes whole, ready-made frames to one socket, in order."""

    def write(self, frame: bytes) -> bool:
        """Take ``frame``; False, taking nothing, while the socket cannot take more
        (its transport is over its high-water mark) or is closing."""
        ...

    def flush(self) -> None:
        """Write out at once what was taken (before a close frame)."""
        ...

    async def wait_writable(self) -> bool:
        """Wait until writes are taken again; False if the socket is closing."""
        ...

    def abort_unless_closed_in(self, seconds: float) -> None:
        """Let go of the connection after ``seconds`` even if the close never finishes."""
        ...


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame: what a server sends for ``text``."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def frame_sink(scope: Scope) -> FrameSink | None:
    """The socket's sink when the server offers one, else None (send through ASGI)."""
    extension: dict[str, Any] | None = scope.get("extensions", {}).get(EXTENSION)
    return extension["sink"] if extension else None
