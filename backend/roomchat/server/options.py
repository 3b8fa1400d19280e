"""How roomchat runs under uvicorn: the options every way of starting it should share."""

from __future__ import annotations

from functools import partial
from typing import Any

from roomchat.config import Settings
from roomchat.ops.logs import logging_config
from roomchat.server.http_protocol import RoomchatHttpProtocol
from roomchat.server.ws_protocol import RoomchatWebSocketProtocol


def uvicorn_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """uvicorn's own frame limit (16 MiB by default) follows ROOMCHAT_MAX_FRAME_BYTES;
    its logging follows ROOMCHAT_LOG_FORMAT (one line per event, tokens redacted, and
    with several ``workers`` the pid of the one that wrote it).

    Sockets use roomchat's protocol (uvicorn's websockets-sansio with a frame sink, see
    ``server.ws_protocol``), without permessage-deflate: a compressed socket
    needs its own copy of every frame (and ~40 KiB of zlib state), where an
    uncompressed one takes the bytes framed once for the whole room. Its pings and
    pongs are limited to the message rate.

    HTTP uses roomchat's protocol too (uvicorn's httptools with a deadline on idle
    connections and on each request's head and body: ``ROOMCHAT_IDLE_TIMEOUT_SECONDS``,
    see ``http_protocol``). Settings reach the protocols through ``partial`` rather than
    classes made on the fly, so that ``--workers`` can hand them to its worker processes.
    """
    return {
        "http": partial(RoomchatHttpProtocol, idle_timeout=settings.idle_timeout_seconds),
        "ws": partial(
            RoomchatWebSocketProtocol,
            control_frames_per_second=settings.messages_per_second,
            control_frame_burst=settings.message_burst,
        ),
        "ws_per_message_deflate": False,
        "ws_max_size": settings.max_frame_bytes,
        "log_level": settings.log_level,
        "log_config": logging_config(
            log_format=settings.log_format, log_level=settings.log_level, pid=workers > 1
        ),
        "proxy_headers": True,
    }
