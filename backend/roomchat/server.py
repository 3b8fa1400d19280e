"""How roomchat runs under uvicorn: the options every way of starting it should share."""

from __future__ import annotations

from typing import Any

from roomchat.config import Settings
from roomchat.logs import logging_config


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own frame limit (16 MiB by default) follows ROOMCHAT_MAX_FRAME_BYTES;
    its logging follows ROOMCHAT_LOG_FORMAT (one line per event, tokens redacted)."""
    return {
        "ws": "websockets-sansio",
        "ws_max_size": settings.max_frame_bytes,
        "log_level": settings.log_level,
        "log_config": logging_config(log_format=settings.log_format, log_level=settings.log_level),
        "proxy_headers": True,
    }
