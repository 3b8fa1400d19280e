"""Users: what every store offers about accounts, and the records it answers with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from roomchat.store.schema import User


class UserRef(NamedTuple):
    """A registered user as the token check needs it: tokens issued before ``created_at``
    belonged to an earlier account of the same name."""

    id: int
    username: str
    created_at: datetime


class UsernameTakenError(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
        self.username = username


class UserStore(Protocol):
    """Accounts by name. Names are compared ignoring case: "Alice" and "alice" are one."""

    @property
    def reuses_ids(self) -> bool:
        """Whether the id of a deleted newest account may be handed out again (SQLite)."""
        ...

    async def create_user(self, *, username: str, password_hash: str) -> User:
        """Store a new account; ``UsernameTakenError`` when the name is taken."""
        ...

    async def get_user(self, *, username: str) -> User | None: ...

    async def delete_user(self, *, username: str) -> bool:
        """Delete an account; its messages stay, without ``user_id``. False: no such user."""
        ...

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, UserRef]:
        """``{lowercased name: UserRef}`` for those of ``usernames`` that exist."""
        ...

    async def list_users(self, *, after: int = 0, limit: int = 500) -> list[UserRef]:
        """Up to ``limit`` accounts with ids above ``after``, by id."""
        ...

    async def set_password_hash(self, *, username: str, password_hash: str) -> bool:
        """Replace an account's password hash. False: no such user."""
        ...
