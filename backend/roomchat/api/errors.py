"""Error answers that are always JSON ``{"detail"}``, short, and say nothing of the internals.

FastAPI's own ``422`` handler echoes each error's ``input`` in full (a 100 MB body came
back as a 100 MB answer) and fails on what Python's json module parses but JSON cannot
carry: ``NaN``, ``Infinity``, ``1e999`` and lone surrogates (``"\\ud800"``) became 500s.
Here every string an error carries is cut to a short excerpt, and made safe to encode.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

#: Characters of a client's input echoed back in a 422, at most (plus an ellipsis).
EXCERPT_CHARS = 100
#: A message is the server's own text, but a validator may quote the input in it.
MESSAGE_CHARS = 300


async def validation_failed(_request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's shape (``type``, ``loc``, ``msg``, ``input``, ``ctx``), cut short."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [short_error(error) for error in errors]}, status_code=422)


#: What a request meets while the database is away: SQLAlchemy's connection-level errors
#: (its pool, a dropped connection, SQLite's "database is locked"), and the refused or
#: reset connection asyncpg raises as is when it cannot connect at all.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
)
#: Seconds a client is asked to wait before it tries again.
RETRY_AFTER_SECONDS = 2


async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """503 + ``Retry-After`` while the database is away, as the contract says: not a 500.
    One warning line (no traceback: it is an outage, not a bug)."""
    log.warning("answered 503, the database is unavailable: %r", exc)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def server_error(_request: Request, _exc: Exception) -> JSONResponse:
    """500 for a bug: the traceback goes to the log (uvicorn writes it), never to the client.

    ``Connection: close`` says what uvicorn does after an app raised: close the connection.
    """
    return JSONResponse(
        {"detail": "Internal Server Error"}, status_code=500, headers={"Connection": "close"}
    )


def short_error(error: Mapping[str, Any]) -> dict[str, Any]:
    short: dict[str, Any] = {
        "type": _text(str(error.get("type", "")), EXCERPT_CHARS),
        "loc": [part if isinstance(part, int) else excerpt(str(part)) for part in error["loc"]],
        "msg": _text(str(error.get("msg", "")), MESSAGE_CHARS),
    }
    if "input" in error:
        short["input"] = excerpt(error["input"])
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping):
        short["ctx"] = {
            _text(str(key), EXCERPT_CHARS): excerpt(value) for key, value in ctx.items()
        }
    return short


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> object:
    """``value`` made safe for strict JSON and short.

    ``None``, booleans, finite numbers and short structures stay as they are; text is
    cut to ``limit`` characters; anything longer, or that JSON cannot hold (``NaN``,
    ``inf``, an object), becomes a cut-down text of it.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else _text(_digits(value), limit)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value, limit)
    if isinstance(value, list | tuple | dict):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            return "…"
        if len(text) <= limit:
            if isinstance(value, dict):
                return {_text(str(key), limit): excerpt(item, limit) for key, item in value.items()}
            return [excerpt(item, limit) for item in value]
        return _text(text, limit)
    return _text(str(value), limit)


def _digits(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python prints (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits"


def _text(value: str, limit: int) -> str:
    """At most ``limit`` characters (then ``…``), lone surrogates spelled out as ``\\udxxx``."""
    cut = value[:limit] + ("…" if len(value) > limit else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")
