"""A line of posts waiting for the writer's next transaction, each with a deadline.

The writer (writer.py) keeps one for its group commit and one per busy room's lane. A
post still in line at its deadline is taken out and handed to ``on_expired`` (which
refuses it), so it can never be taken into a transaction later. One timer, for the oldest
post, does it: posts join in the order they arrive, so deadlines are in line order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Waiting(Protocol):
    """What a line needs of a post."""

    @property
    def room(self) -> str: ...

    @property
    def stored(self) -> asyncio.Future[Any]:
        """Done once its sender has an answer (or has gone: cancelled)."""
        ...

    @property
    def deadline(self) -> float:
        """The loop's time past which, still in line, it is refused."""
        ...


P = TypeVar("P", bound=Waiting)


class Line(Generic[P]):
    """Posts waiting for a transaction, oldest first."""

    def __init__(self, on_expired: Callable[[list[P]], object]) -> None:
        self._posts: deque[P] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._on_expired = on_expired

    def __bool__(self) -> bool:
        return bool(self._posts)

    def add(self, post: P) -> None:
        self._posts.append(post)
        if self._timer is None:
            self._arm()

    def put_back(self, posts: list[P]) -> None:
        """Posts taken whose transaction ended without committing: first in line again."""
        self._posts.extendleft(reversed(posts))
        self._arm()

    def take(self, room: str | None = None) -> list[P]:
        """Every post in line (only ``room``'s, if given) still awaited and in time, in
        order; the expired ones are refused first."""
        self._expire()
        if room is None:
            taken = [post for post in self._posts if not post.stored.done()]
            self._posts.clear()
            return taken
        taken = [post for post in self._posts if post.room == room and not post.stored.done()]
        self._posts = deque(post for post in self._posts if post.room != room)
        return taken

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self.close()
        if self._posts:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._posts[0].deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._expire()
        self._arm()

    def _expire(self) -> None:
        now = asyncio.get_running_loop().time()
        expired: list[P] = []
        while self._posts and self._posts[0].deadline <= now:
            post = self._posts.popleft()
            if not post.stored.done():
                expired.append(post)
        if expired:
            self._on_expired(expired)
