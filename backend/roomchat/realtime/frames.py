"""Client frames: parse and validate what a socket sends, with stable error codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from roomchat.api.schemas import BLANK_CHARACTERS


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str


@dataclass(frozen=True, slots=True)
class Typing:
    pass


@dataclass(frozen=True, slots=True)
class FrameError:
    """A bad frame: answered with ``{"type": "error", "code", "detail"}``; the socket stays."""

    code: str
    detail: str


ClientFrame = ChatMessage | Typing
_FIELDS = {"message": {"type", "text"}, "typing": {"type"}}

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
    unknown = sorted(set(frame) - _FIELDS[kind])
    if unknown:
        fields = f"{len(unknown)} unexpected field(s) in a {kind} frame: {excerpt(unknown)}"
        return FrameError("unknown_field", fields)
    if kind == "typing":
        return Typing()
    text = frame.get("text")
    if not isinstance(text, str):
        return FrameError("bad_text", f"'text' must be a string, got {type(text).__name__}")
    return check_text(text, max_chars=max_chars)


def check_text(text: str, *, max_chars: int) -> ChatMessage | FrameError:
    if not text.strip(BLANK_CHARACTERS):
        return FrameError("empty_text", "the message text is empty or blank")
    if "\x00" in text:  # PostgreSQL cannot store it; refused on every backend alike
        return FrameError("bad_text", "the text must not contain NUL (U+0000) characters")
    if len(text) > max_chars:
        return FrameError(
            "text_too_long", f"the text is {len(text)} characters; at most {max_chars}"
        )
    return ChatMessage(text)
