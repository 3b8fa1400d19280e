"""A joining socket's history: its last messages, or the first after ``since=``."""

from __future__ import annotations

from dataclasses import dataclass

from roomchat.realtime import events
from roomchat.store.messages import MessageStore

#: Messages a history replay reads from the store at a time.
REPLAY_PAGE = 100


@dataclass(frozen=True, slots=True)
class Replay:
    """A joining socket's history frame: its messages, encoded, and where live events
    take over (``latest``); ``more``: recovery left out messages up to ``latest``."""

    messages: list[str]
    latest: int
    more: bool


async def replay(
    store: MessageStore,
    room: str,
    *,
    known: int,
    since: int | None,
    limit: int,
    max_chars: int,
) -> Replay:
    """The last ``limit`` messages, or with ``since`` the first ``limit`` after it; in
    either case no more than about ``max_chars`` of JSON (always at least one message).
    They are read a page at a time and each is encoded once, so a big room is never in
    memory whole.

    ``known`` is the newest message id the socket will get live (its room listener's);
    ``latest`` is that, or the newest replayed if the store is ahead of it. When ``known``
    says there is nothing to replay (an empty room, a client up to date), the store is
    not asked.
    """
    if known <= (since if since is not None else 0):
        return Replay([], max(known, since or 0), more=False)
    if since is None:
        messages, last = await _newest(store, room, limit=limit, max_chars=max_chars)
        return Replay(messages, max(known, last), more=False)
    messages, last, stopped_short = await _after(
        store, room, since, limit=limit, max_chars=max_chars
    )
    latest = max(known, last)
    return Replay(messages, latest, more=stopped_short and last < latest)


async def _newest(
    store: MessageStore, room: str, *, limit: int, max_chars: int
) -> tuple[list[str], int]:
    """The room's last messages, encoded, oldest first; and the newest id (0: none)."""
    newest_first: list[str] = []
    size, before, newest = 0, None, 0
    while len(newest_first) < limit:
        wanted = min(REPLAY_PAGE, limit - len(newest_first))
        page = await store.list_messages(room=room, limit=wanted, before=before)
        if page and not newest:
            newest = page[-1].id
        for message in reversed(page):
            encoded = events.message_json(message)
            if newest_first and size + len(encoded) > max_chars:
                return newest_first[::-1], newest
            newest_first.append(encoded)
            size += len(encoded)
        if len(page) < wanted:
            break
        before = page[0].id
    return newest_first[::-1], newest


async def _after(
    store: MessageStore, room: str, since: int, *, limit: int, max_chars: int
) -> tuple[list[str], int, bool]:
    """The first messages after ``since``, encoded; the last id among them (or
    ``since``); and whether messages after that were left out."""
    messages: list[str] = []
    size, last = 0, since
    while True:
        wanted = min(REPLAY_PAGE, limit - len(messages) + 1)  # one more: is there more?
        page = await store.list_messages(room=room, limit=wanted, after=last)
        for message in page:
            encoded = events.message_json(message)
            if len(messages) == limit or (messages and size + len(encoded) > max_chars):
                return messages, last, True
            messages.append(encoded)
            size += len(encoded)
            last = message.id
        if len(page) < wanted:
            return messages, last, False
