"""Pydantic models for HTTP bodies (the shapes API.md names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from roomchat.accounts.security import MAX_PASSWORD_CHARS

USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,32}$"
ROOM_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"

#: What makes a text blank: every character Python's ``str.isspace`` or a JSON Schema
#: (ECMA-262) ``\s`` calls white space, so the schema and the server agree on every text.
BLANK_CHARACTERS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_BLANK_CLASS = "".join(f"\\u{ord(ch):04x}" for ch in BLANK_CHARACTERS)
#: Not blank, and no NUL (U+0000), which PostgreSQL cannot store.
MESSAGE_TEXT_PATTERN = rf"^[^\x00]*[^{_BLANK_CLASS}\x00][^\x00]*$"

#: A client key for exactly-once sends: 1-64 printable ASCII characters (what an HTTP
#: header carries unchanged, so a socket and ``Idempotency-Key`` share keys), neither
#: starting nor ending with a space (a header's value loses those).
CLIENT_ID_PATTERN = r"^[!-~](?:[ -~]{0,62}[!-~])?$"

Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=MAX_PASSWORD_CHARS)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password


class UserOut(BaseModel):
    id: int
    username: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a type name, not a secret)
    expires_in: int = Field(description="seconds until the token expires")


class MessageOut(BaseModel):
    id: int
    room: str
    user: str
    text: str
    ts: str = Field(examples=["2026-01-01T00:00:00.000Z"])


class MessagePage(BaseModel):
    messages: list[MessageOut]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        pattern=MESSAGE_TEXT_PATTERN,
        description="not blank, no NUL (U+0000); at most ROOMCHAT_MAX_MESSAGE_CHARS characters",
    )


class RoomOut(BaseModel):
    name: str
    members: int


class MembersOut(BaseModel):
    members: list[str]


class Health(BaseModel):
    status: str


def format_ts(moment: datetime) -> str:
    """``2026-01-01T00:00:00.000Z``: UTC, milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
