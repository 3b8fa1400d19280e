"""The one serialized form of every server event: JSON text, encoded once per event.

The same string goes through the broker (memory or Redis, inside a ``room_payload``)
and, unchanged, to every socket of the room. Keys come in a fixed order, so a message
event can be recognised and its id read from the prefix without decoding the whole frame
again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from roomchat.api.schemas import format_ts
from roomchat.store.schema import Message

_MESSAGE_PREFIX = '{"type":"message","id":'


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def message_dict(message: Message) -> dict[str, Any]:
    """The contract's Message: ``{id, room, user, text, ts}``."""
    return {
        "id": message.id,
        "room": message.room,
        "user": message.author,
        "text": message.text,
        "ts": format_ts(message.created_at),
    }


def message_event(message: Message) -> str:
    return encode({"type": "message", **message_dict(message)})


def room_payload(frame: str, previous_id: int | None = None) -> str:
    """What a room's channel carries (the one encoding of a broker payload): the frame
    itself, or for a message ``"<previous id>|<message event>"``.

    ``previous_id`` is the id of the message stored just before it in the same room (0 for
    the first), so a listener can tell when one went missing and fetch it from the store.
    A frame starts with ``{``, so the two cannot be confused.
    """
    return frame if previous_id is None else f"{previous_id}|{frame}"


def read_room_payload(payload: str) -> tuple[int | None, str]:
    """``(previous id, frame)`` of a ``room_payload``: ``(None, frame)`` for all but messages."""
    if payload.startswith("{"):
        return None, payload
    previous, _, frame = payload.partition("|")
    return int(previous), frame


def message_json(message: Message) -> str:
    """One Message as JSON, for a history frame (``history_event``)."""
    return encode(message_dict(message))


def history_event(room: str, messages: Iterable[str], *, latest: int, more: bool) -> str:
    """The history frame, around messages already encoded (``message_json``): each is
    encoded once, as the replay is gathered, and the frame joined from them."""
    head = encode({"type": "history", "room": room})[:-1]
    tail = encode({"latest": latest, "more": more})[1:]
    return f'{head},"messages":[{",".join(messages)}],{tail}'


def presence_event(room: str, members: Iterable[str]) -> str:
    return encode({"type": "presence", "room": room, "members": sorted(members)})


def join_event(room: str, user: str) -> str:
    return encode({"type": "join", "room": room, "user": user})


def leave_event(room: str, user: str) -> str:
    return encode({"type": "leave", "room": room, "user": user})


def typing_event(room: str, user: str) -> str:
    return encode({"type": "typing", "room": room, "user": user})


def error_event(code: str, detail: str, client_id: str | None = None) -> str:
    """An error answering a client's frame; one answering a keyed message names its key."""
    if client_id is None:
        return encode({"type": "error", "code": code, "detail": detail})
    return encode({"type": "error", "code": code, "detail": detail, "client_id": client_id})


def ack_event(room: str, client_id: str, message_id: int) -> str:
    """To the sender's socket only: its keyed message is stored (or was, first) as ``id``."""
    return encode({"type": "ack", "room": room, "client_id": client_id, "id": message_id})


def message_id(event: str) -> int | None:
    """The id of a message event (as ``encode`` writes it), or None for other events."""
    if not event.startswith(_MESSAGE_PREFIX):
        return None
    end = event.index(",", len(_MESSAGE_PREFIX))
    return int(event[len(_MESSAGE_PREFIX) : end])
