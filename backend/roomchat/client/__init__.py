"""A roomchat client: HTTP calls, and rooms that reconnect and yield each message once.

async with Client("http://127.0.0.1:8000", username="alice", password="…") as client:
    async with client.room("lobby") as room:
        await room.send("hello")
        async for event in room:
            if isinstance(event, Message):
                print(event.user, event.text)
"""

from __future__ import annotations

from roomchat.client.backoff import Backoff
from roomchat.client.errors import (
    AuthenticationError,
    HandshakeRefusedError,
    HTTPError,
    MessageRefusedError,
    OutcomeUnknownError,
    RoomchatError,
    RoomClosedError,
    ServerUnavailableError,
)
from roomchat.client.http import Client
from roomchat.client.models import (
    Ack,
    Disconnected,
    ErrorEvent,
    Event,
    Join,
    Leave,
    Message,
    Presence,
    RoomInfo,
    Typing,
    User,
)
from roomchat.client.room import RECONNECT_CODES, Room

__all__ = [
    "RECONNECT_CODES",
    "Ack",
    "AuthenticationError",
    "Backoff",
    "Client",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "HTTPError",
    "HandshakeRefusedError",
    "Join",
    "Leave",
    "Message",
    "MessageRefusedError",
    "OutcomeUnknownError",
    "Presence",
    "Room",
    "RoomClosedError",
    "RoomInfo",
    "RoomchatError",
    "ServerUnavailableError",
    "Typing",
    "User",
]
