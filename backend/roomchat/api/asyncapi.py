"""The WebSocket protocol as an AsyncAPI 3 document, built from the frames' models.

OpenAPI (``/openapi.json``) covers the HTTP routes; this covers ``/ws/{room}``: what a
client may send and every frame the server sends (API.md, "WebSocket"). The document is
generated from the pydantic models below, and ``tests/test_asyncapi.py`` checks every
frame a live server sends against it, so the models, the document and the server cannot
drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from roomchat import __version__
from roomchat.api.schemas import CLIENT_ID_PATTERN, MESSAGE_TEXT_PATTERN, ROOM_PATTERN

ASYNCAPI_URL = "/asyncapi.json"
_SCHEMAS = "#/components/schemas/{model}"


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]


def _optional(schema: dict[str, Any]) -> None:
    """An optional field the server leaves out (never sends null): no default to show."""
    schema.pop("default", None)


# -- what the server sends -----------------------------------------------------------------


class MessagePayload(Frame):
    """A stored message; ``id`` only grows within a room."""

    id: int = Field(ge=1)
    room: str = Field(pattern=ROOM_PATTERN)
    user: str
    text: str
    ts: str = Field(description="UTC, ISO 8601 with milliseconds: 2026-01-01T00:00:00.000Z")


class MessageFrame(MessagePayload):
    """A new message in the room, in the same order for every member."""

    type: Literal["message"]


class HistoryFrame(Frame):
    """First on accept: the last ``ROOMCHAT_HISTORY_LIMIT`` messages, or with ``since=ID``
    those after it (at most ``ROOMCHAT_RECOVERY_LIMIT``; with ``more``, fetch the rest
    over HTTP with ``after=`` up to ``latest``)."""

    type: Literal["history"]
    room: str
    messages: list[MessagePayload]
    latest: int = Field(ge=0, description="the room's newest message id when the socket joined")
    more: bool


class PresenceFrame(Frame):
    """Second on accept, and after every reconnect: who is online in the room."""

    type: Literal["presence"]
    room: str
    members: list[str]


class JoinFrame(Frame):
    """A user's first socket in the room opened."""

    type: Literal["join"]
    room: str
    user: str


class LeaveFrame(Frame):
    """A user's last socket in the room closed."""

    type: Literal["leave"]
    room: str
    user: str


class TypingFrame(Frame):
    """Someone in the room is typing."""

    type: Literal["typing"]
    room: str
    user: str


class AckFrame(Frame):
    """To the sender's socket only: its message with this ``client_id`` is stored as ``id``.
    A repeated key (same user, room, within 24 hours) is acked with the first message's id
    and stores nothing new."""

    type: Literal["ack"]
    room: str = Field(pattern=ROOM_PATTERN)
    client_id: ClientId
    id: int = Field(ge=1)


class ErrorFrame(Frame):
    """One of the client's frames was refused; the socket stays open."""

    type: Literal["error"]
    code: str = Field(
        description="bad_json, unknown_type, unknown_field, bad_text, empty_text, "
        "text_too_long, bad_client_id, binary_frame, rate_limited, unavailable, "
        "store_unavailable"
    )
    detail: str
    client_id: ClientId | SkipJsonSchema[None] = Field(
        default=None,
        description="the refused message frame's client_id, when it had a valid one",
        json_schema_extra=_optional,
    )


# -- what a client sends -------------------------------------------------------------------


class SendMessage(Frame):
    """Post a message (a text frame not starting with ``{`` is one too, as plain text).
    With a ``client_id`` it is stored once and acked: send it again with the same key
    until the ``ack`` comes."""

    type: Literal["message"]
    text: str = Field(min_length=1, pattern=MESSAGE_TEXT_PATTERN)
    client_id: ClientId | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_optional,
        description="your key for this message: 1-64 printable ASCII characters, no space "
        "at either end; shared with HTTP's Idempotency-Key",
    )


class SendTyping(Frame):
    """Tell the room you are typing (announced at most once a second)."""

    type: Literal["typing"]


SERVER_FRAMES: dict[str, type[Frame]] = {
    "history": HistoryFrame,
    "presence": PresenceFrame,
    "message": MessageFrame,
    "join": JoinFrame,
    "leave": LeaveFrame,
    "typing": TypingFrame,
    "ack": AckFrame,
    "error": ErrorFrame,
}
CLIENT_FRAMES: dict[str, type[Frame]] = {"sendMessage": SendMessage, "sendTyping": SendTyping}


@cache
def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (the server's host is left to the reader: relative)."""
    frames = {**SERVER_FRAMES, **CLIENT_FRAMES}
    _, schemas = models_json_schema(
        [(model, "validation") for model in frames.values()], ref_template=_SCHEMAS
    )
    messages = {
        name: {
            "name": name,
            "title": model.__name__,
            "summary": (model.__doc__ or "").split("\n\n")[0].replace("\n", " ").strip(),
            "contentType": "application/json",
            "payload": {"$ref": _SCHEMAS.format(model=model.__name__)},
        }
        for name, model in frames.items()
    }
    room = "#/channels/room"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "roomchat WebSocket",
            "version": __version__,
            "description": "One socket per room. The token is checked before the socket "
            "is accepted: a refused handshake gets 401 (token), 403 (origin), 422 (room "
            "name or since), or 429 (too many sockets) instead of an upgrade. Close codes: "
            "1000 normal, 1001/1012 restarting (reconnect with since=), 1008 token "
            "expired, session ended or abuse, 1009 frame too large, 1011 server error, "
            "1013 too slow to keep up.",
        },
        "channels": {
            "room": {
                "address": "/ws/{room}",
                "title": "A room",
                "parameters": {"room": {"description": f"the room's name: {ROOM_PATTERN}"}},
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in frames},
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {"type": "string", "description": "an access token"},
                                "since": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "description": "recover the messages after this id",
                                },
                            },
                        },
                    }
                },
            }
        },
        "operations": {
            "sendRoomEvents": {
                "action": "send",
                "title": "The server sends the room's frames",
                "channel": {"$ref": room},
                "messages": [{"$ref": f"{room}/messages/{name}"} for name in SERVER_FRAMES],
            },
            "receiveClientFrames": {
                "action": "receive",
                "title": "The server receives a member's frames",
                "channel": {"$ref": room},
                "messages": [{"$ref": f"{room}/messages/{name}"} for name in CLIENT_FRAMES],
            },
        },
        "components": {"schemas": schemas["$defs"], "messages": messages},
    }
