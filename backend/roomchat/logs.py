"""Logging set-up, with a filter that keeps tokens out of every log line."""

from __future__ import annotations

import logging
import re

_TOKEN_IN_TEXT = re.compile(r"((?:access_)?token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
REDACTED_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "roomchat", "")


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_TEXT.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    """Rewrites ``token=…`` and ``Bearer …`` in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


_filter = RedactTokens()


def install_redaction() -> None:
    """Attach the filter to the loggers that see request paths (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
        for handler in logger.handlers:
            if _filter not in handler.filters:
                handler.addFilter(_filter)
