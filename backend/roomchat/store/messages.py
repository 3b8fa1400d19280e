"""Messages: what every store offers about rooms' messages, and the records it speaks in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import NamedTuple, Protocol

from roomchat.store.schema import Message

#: How long a client key stays its user's in a room: after it, the same key is new again.
CLIENT_ID_WINDOW = timedelta(hours=24)


class Draft(NamedTuple):
    """A message about to be stored; ``client_id``, the sender's key for sending it once."""

    user_id: int
    author: str
    text: str
    client_id: str | None = None


#: No repeats: a batch whose every draft stored a message.
NO_REPEATS: Mapping[int, Message] = MappingProxyType({})


class StoredBatch(NamedTuple):
    """A room's part of a group commit: the id of the room's message before this batch's
    first (0: none), the messages it stored (in id order: what to publish), and the drafts
    that stored nothing because they repeat a client key, by their place among the drafts
    given, with the message first stored with that key."""

    previous_id: int
    messages: list[Message]
    repeats: Mapping[int, Message] = NO_REPEATS

    def answers(self) -> list[Message]:
        """The message that answers each draft, in the order given: a new one, or the one
        it repeats (``repeats``)."""
        if not self.repeats:
            return self.messages
        new = iter(self.messages)
        count = len(self.messages) + len(self.repeats)
        return [self.repeats[n] if n in self.repeats else next(new) for n in range(count)]


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

        A draft with a ``client_id`` its user already used in the room within
        ``CLIENT_ID_WINDOW`` (in an earlier batch, on any worker, or earlier in this one)
        stores nothing: its answer is the first message with that key.
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
