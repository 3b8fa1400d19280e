"""Messages: what every store offers about rooms' messages, and the records it speaks in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from roomchat.store.schema import Message


class Draft(NamedTuple):
    """A message about to be stored."""

    user_id: int
    author: str
    text: str


class StoredBatch(NamedTuple):
    """Messages just stored, and the id of the room's message before the first (0: none)."""

    previous_id: int
    messages: list[Message]


class MessageStore(Protocol):
    """Each room's messages in id order. The real-time paths (the writer's group commit,
    a room listener's newest id, catch-up and a joining socket's history) and the HTTP
    API use it."""

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[Draft]], wait: float | None = None
    ) -> dict[str, StoredBatch]:
        """Store messages for several rooms in one transaction (a group commit).

        Within a room, ids follow the given order. A room's writers take turns (on every
        worker and host), so a room's messages commit in id order and each batch knows the
        message before it: listeners use that link to notice a message they never received.

        Without ``wait`` a room another writer holds right now is not waited for: it is
        missing from the result, and nothing of it was stored. With ``wait`` each room is
        waited for up to that many seconds, then the whole call fails (nothing stored).
        ``runner.CommitOutcomeUnknownError``: the commit's answer was lost.
        """
        ...

    async def latest_message_id(self, *, room: str) -> int:
        """The id of the room's newest message (0 when it has none)."""
        ...

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        """A page of a room's messages, oldest first, between the ids given.

        With ``after``, the first ``limit`` messages after it (paging forward); otherwise
        the last ``limit`` messages (paging back). ``before`` bounds either from above.
        """
        ...

    async def rooms_with_messages(self, *, limit: int, after: str | None = None) -> list[str]:
        """The first ``limit`` names of rooms with messages, after ``after``, in byte order
        (Python's ``sorted``)."""
        ...

    async def close(self) -> None: ...
