"""Client frames: parse and validate what a socket sends, with stable error codes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from roomchat.api.schemas import BLANK_CHARACTERS, CLIENT_ID_PATTERN


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    #: The sender's key for storing it once (API.md, "Exactly-once sends"), or None.
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    pass


@dataclass(frozen=True, slots=True)
class FrameError:
    """A bad frame: answered with ``{"type": "error", "code", "detail"}``; the socket stays.
    A message frame's valid ``client_id`` is answered with it, so the client knows which
    send failed."""

    code: str
    detail: str
    client_id: str | None = None


ClientFrame = ChatMessage | Typing
_FIELDS = {"message": {"type", "text", "client_id"}, "typing": {"type"}}
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)

#: The most of a client's own input an error's detail quotes back (a 60 KB ``type`` was
#: once echoed whole, frame after frame).
EXCERPT_CHARS = 40


def excerpt(value: object) -> str:
    """``repr(value)``, cut to ``EXCERPT_CHARS``: enough to recognise, never an echo."""
    quoted = repr(value)
    return quoted if len(quoted) <= EXCERPT_CHARS else quoted[: EXCERPT_CHARS - 1] + "…"


def parse_frame(raw: str, *, max_chars: int) -> ClientFrame | FrameError:
    """A text frame that does not start with ``{`` is a message with that text."""
    if not raw.startswith("{"):
        return check_text(raw, max_chars=max_chars)
    try:
        frame: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return FrameError("bad_json", "a frame starting with '{' must be a JSON object")
    if not isinstance(frame, dict):
        return FrameError("bad_json", "a frame starting with '{' must be a JSON object")
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        got = excerpt(kind)
        return FrameError("unknown_type", f"expected type 'message' or 'typing', got {got}")
    client_id = None
    if kind == "message" and "client_id" in frame:
        client_id = frame["client_id"]
        if not is_client_id(client_id):
            return FrameError("bad_client_id", bad_client_id(client_id))
    unknown = sorted(set(frame) - _FIELDS[kind])
    if unknown:
        fields = f"{len(unknown)} unexpected field(s) in a {kind} frame: {excerpt(unknown)}"
        return FrameError("unknown_field", fields, client_id)
    if kind == "typing":
        return Typing()
    text = frame.get("text")
    if not isinstance(text, str):
        got = type(text).__name__
        return FrameError("bad_text", f"'text' must be a string, got {got}", client_id)
    return check_text(text, max_chars=max_chars, client_id=client_id)


def is_client_id(value: object) -> bool:
    """1-64 printable ASCII characters, no space at either end (``CLIENT_ID_PATTERN``)."""
    return isinstance(value, str) and _CLIENT_ID.fullmatch(value) is not None


def bad_client_id(value: object) -> str:
    return (
        "'client_id' must be 1-64 printable ASCII characters, no space at either end; "
        f"got {excerpt(value)}"
    )


def check_text(
    text: str, *, max_chars: int, client_id: str | None = None
) -> ChatMessage | FrameError:
    if not text.strip(BLANK_CHARACTERS):
        return FrameError("empty_text", "the message text is empty or blank", client_id)
    if "\x00" in text:  # PostgreSQL cannot store it; refused on every backend alike
        detail = "the text must not contain NUL (U+0000) characters"
        return FrameError("bad_text", detail, client_id)
    if len(text) > max_chars:
        detail = f"the text is {len(text)} characters; at most {max_chars}"
        return FrameError("text_too_long", detail, client_id)
    return ChatMessage(text, client_id)
