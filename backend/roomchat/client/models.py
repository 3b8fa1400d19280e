"""What the server sends, as typed, immutable values: events of a room, users, rooms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message; ``id`` only grows within a room."""

    id: int
    room: str
    user: str
    text: str
    ts: str

    @property
    def time(self) -> datetime:
        """``ts`` as an aware UTC datetime."""
        return datetime.fromisoformat(self.ts.replace("Z", "+00:00"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            id=int(data["id"]),
            room=str(data["room"]),
            user=str(data["user"]),
            text=str(data["text"]),
            ts=str(data["ts"]),
        )


@dataclass(frozen=True, slots=True)
class Join:
    """A user's first socket in the room opened."""

    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Leave:
    """A user's last socket in the room closed."""

    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    user: str


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is online: sent after every (re)connect, so a client can start over from it."""

    room: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The server refused one of our frames (``text_too_long``, ``bad_json``…).

    ``client_id`` names the message it refused, when it was one sent with ``room.send``;
    a refusal the room retries by itself (``rate_limited``, ``unavailable``,
    ``store_unavailable``) is not yielded until the retries run out."""

    code: str
    detail: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """A message sent with ``room.send`` is stored: ``client_id`` (what ``send`` returned)
    is message ``id``. Its ``Message`` event comes too, before or after."""

    room: str
    client_id: str
    id: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The room's socket closed (``code``, ``reason``) and the client is reconnecting;
    a ``Presence`` follows once it is back, and no message is lost in between."""

    room: str
    code: int
    reason: str


Event = Message | Join | Leave | Typing | Presence | ErrorEvent | Ack | Disconnected


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    members: int


_USER_EVENTS: dict[str, type[Join | Leave | Typing]] = {
    "join": Join,
    "leave": Leave,
    "typing": Typing,
}


def parse_event(frame: dict[str, Any], room: str) -> Event | None:
    """One server frame (not ``history``) as an event; None for a type this client lacks."""
    kind = frame.get("type")
    if kind == "message":
        return Message.from_json(frame)
    if kind in _USER_EVENTS:
        return _USER_EVENTS[kind](room=str(frame.get("room", room)), user=str(frame["user"]))
    if kind == "presence":
        return Presence(room=str(frame.get("room", room)), members=tuple(frame["members"]))
    if kind == "error":
        client_id = frame.get("client_id")
        return ErrorEvent(
            code=str(frame.get("code")),
            detail=str(frame.get("detail")),
            client_id=str(client_id) if client_id is not None else None,
        )
    if kind == "ack":
        client_id, message_id = str(frame["client_id"]), int(frame["id"])
        return Ack(room=str(frame.get("room", room)), client_id=client_id, id=message_id)
    return None
