"""Logging set-up: one line per event (key=value or JSON), and never a token in it."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, unquote_plus

REDACTED = "[redacted]"
#: A path and its query string, as uvicorn logs a request line.
_PATH_AND_QUERY = re.compile(r"(/[^\s?\"']*)\?([^\s\"']*)")
_TOKEN_IN_TEXT = re.compile(r"((?:access_)?token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
#: A JWT anywhere: its header is base64url JSON, so it starts with ``eyJ`` (``{"``).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
REDACTED_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "roomchat", "")


def redact(text: str) -> str:
    """Remove anything that may be a token.

    Query strings are read as the server reads them, after percent-decoding (Starlette
    takes ``?tok%65n=…`` for ``token``): a socket path (``/ws…``) loses its whole query
    string, any other path every parameter whose decoded name mentions a token. Then
    ``token=…`` in free text, ``Bearer …`` and anything shaped like a JWT go too.
    """
    text = _PATH_AND_QUERY.sub(_redact_query, text)
    text = _TOKEN_IN_TEXT.sub(rf"\1{REDACTED}", text)
    return _JWT.sub(REDACTED, _BEARER.sub(rf"\1{REDACTED}", text))


def _redact_query(match: re.Match[str]) -> str:
    path, query = match.groups()
    if unquote(path).startswith("/ws"):
        return f"{path}?{REDACTED}"
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        if equals and "token" in unquote_plus(name).lower():
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}"


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
    """Attach the filter to the loggers that see request paths, and their handlers.

    For the whole process, so only the app that owns it calls this, at startup (after
    uvicorn has configured logging, with ``roomchat serve``'s config or its own). It is
    idempotent and never removed: it only takes tokens out, and taking it away at
    shutdown could only let one through.
    """
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
        for handler in logger.handlers:
            if _filter not in handler.filters:
                handler.addFilter(_filter)


# -- one line per event ------------------------------------------------------------------

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


#: uvicorn logs its server's life (started, listening, shutting down) as ``uvicorn.error``
#: whatever the level; those lines are named for what they are.
LOGGER_NAMES = {"uvicorn.error": "uvicorn.server"}


class StructuredFormatter(logging.Formatter):
    """``ts``, ``level``, ``logger``, (``pid``), ``msg``, any ``extra={…}`` fields, ``exc``.

    uvicorn's access lines also get ``client``, ``method``, ``path`` and ``status``. Every
    value is redacted (not only the message), so no token leaves, whatever field it hid in.
    ``pid``: the process that logged, for ``--workers N`` whose lines share one stream.
    """

    def __init__(self, *, pid: bool = False) -> None:
        super().__init__()
        self.pid = pid

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        moment = datetime.fromtimestamp(record.created, UTC)
        fields: dict[str, Any] = {
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": LOGGER_NAMES.get(record.name, record.name),
        }
        if self.pid:
            fields["pid"] = record.process
        fields["msg"] = record.getMessage()
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _version, status = args
            fields.update(client=client, method=method, path=path, status=status)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return {key: _redacted(value) for key, value in fields.items()}


class KeyValueFormatter(StructuredFormatter):
    """``key=value`` pairs; a value with spaces, quotes or newlines is a JSON string."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = (f"{key}={_value(value)}" for key, value in self.fields(record).items())
        return " ".join(pairs)


class JsonFormatter(StructuredFormatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _value(value: Any) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


def logging_config(*, log_format: str, log_level: str, pid: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and roomchat, shaped like uvicorn's own;
    ``pid``: every line names the process that wrote it (for several workers)."""
    formatter = JsonFormatter if log_format == "json" else KeyValueFormatter
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "line",
        "filters": ["redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": {"line": {"()": formatter, "pid": pid}},
        "handlers": {
            "default": handler | {"stream": "ext://sys.stderr"},
            "access": handler | {"stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "roomchat": {
                "handlers": ["default"],
                "level": log_level.upper(),
                "propagate": False,
            },
        },
        # Every other library's warnings and errors (asyncio, SQLAlchemy, websockets…):
        # on the same one-line, redacted handler, not Python's bare last-resort one.
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
