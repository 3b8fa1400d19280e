"""The message writer: store, then publish, every message posted in this process.

One writer per process takes everything posted while it was busy, from every room, and
stores it in one transaction (a group commit); then it publishes each room's new messages
in id order, each naming the message before it, and only then tells the senders. A sender
can keep posting meanwhile: its posts wait in line and go into the next transaction. A
post that repeats its sender's client key stores and publishes nothing: its sender is told
of the message first stored with that key.

**Lanes.** The group commit never waits for a room: on PostgreSQL it takes each room's
lock only if it is free. A room another writer holds (another worker committing, or one
frozen while holding it) is left out and the other rooms commit at once. That room's
posts, and every later one for it, go to a lane of the room's own: a task that stores them
in order, in transactions of their own, each waiting for the room a bounded time (the lock
bound, or less: until its oldest post's deadline), trying again with backoff. A lane with
nothing left ends, and the room's posts go to the group commit again. (SQLite has one
write lock, which every transaction takes first: no room is ever left out.)

**Deadlines.** A post waits in line at most ``post_deadline`` seconds; then it is refused
(``StoreUnavailableError``, ``NOT_STORED_IN_TIME``), taken out of line, and never stored.
What a sender hears is exact:

- its message, once the transaction holding it committed;
- "not stored" (``NOT_STORED_IN_TIME``, ``STORE_FAILED``) only when its post never entered
  a transaction, or its transaction ended without committing: a statement failed (the
  COMMIT was never sent), PostgreSQL answered the COMMIT with an ERROR, or asyncpg found
  the connection closed before sending it (``through_engine.nothing_committed``);
- "may or may not be stored" (``StoreOutcomeUnknownError``) when the COMMIT was sent and
  its answer lost: a client retries with the same key, and never assumes either way.

**A frozen worker** (SIGSTOP, a long GC pause, a partition) inside a transaction keeps its
rooms' locks only until PostgreSQL's idle-in-transaction bound
(``ROOMCHAT_DATABASE_IDLE_IN_TRANSACTION_SECONDS``) ends its session; that rolls the
transaction back and frees the locks, and the other workers' lanes take the rooms. When it
resumes, its next statement or its COMMIT meets the ended session and fails, and its
senders hear that it failed. Nothing is committed after a sender was told it failed,
because "not stored" is said only of a post that never entered a transaction (refused
posts leave the line at once, and taking a batch drops the expired first: on one event
loop nothing comes between, so a resumed worker cannot take one in) or of a transaction
that ended without committing, which can never commit later; every other answer waits
for the COMMIT's. (A worker frozen between asyncpg's preparing a statement and running it,
a connection's first use of it, is "active" to PostgreSQL, not idle: its rooms stay held
until it resumes, their posts elsewhere refused by their deadline. The guarantee holds.)

``submit`` is the one way in, for sockets and HTTP alike. ``stuck`` is for readiness.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime import events
from roomchat.realtime.broker import Broker, BrokerUnavailableError
from roomchat.realtime.line import Line
from roomchat.realtime.tasks import spawn
from roomchat.store.messages import MessageStore
from roomchat.store.schema import Message

log = logging.getLogger(__name__)

#: Defaults of ``ROOMCHAT_POST_DEADLINE_SECONDS`` and ``ROOMCHAT_DATABASE_LOCK_TIMEOUT_SECONDS``.
POST_DEADLINE_SECONDS = 8.0
LOCK_WAIT_SECONDS = 2.0
#: A lane's pause between two attempts: the first, doubled each time up to the last.
LANE_BACKOFF_SECONDS = (0.05, 1.0)
#: The shortest lock wait a lane asks for (PostgreSQL counts in milliseconds).
MIN_LOCK_WAIT_SECONDS = 0.001


class ChatUnavailableError(Exception):
    """A message was not delivered; a socket hears ``code`` in an error frame, HTTP a 503."""

    code: str


class StoreUnavailableError(ChatUnavailableError):
    """The message could not be stored, so it was not delivered."""

    code = "store_unavailable"


class StoreOutcomeUnknownError(StoreUnavailableError):
    """The COMMIT's answer was lost: the message may or may not be stored."""


class BackendUnavailableError(ChatUnavailableError):
    """The shared backend (Redis) is away: the message was refused, not stored."""

    code = "unavailable"


WRITER_FAILED = "the server failed while storing the message; it may or may not be stored"
STORE_FAILED = "the message could not be stored"
NOT_STORED_IN_TIME = "the message could not be stored in time; it was not stored"
OUTCOME_UNKNOWN = (
    "the database connection was lost while committing the message; it may or may not be stored"
)


@dataclass(eq=False, slots=True)
class _Post:
    room: str
    draft: store.Draft
    stored: asyncio.Future[Message]
    #: The loop's time past which, still in line, it is refused.
    deadline: float


class _TryAgain(Exception):
    """A lane's transaction failed in a way another attempt may not: nothing was stored."""


class _Backoff:
    def __init__(self) -> None:
        self._next = LANE_BACKOFF_SECONDS[0]

    def pause(self) -> float:
        delay, self._next = self._next, min(self._next * 2, LANE_BACKOFF_SECONDS[1])
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (spreads the workers out)

    def reset(self) -> None:
        self._next = LANE_BACKOFF_SECONDS[0]


class MessageWriter:
    def __init__(
        self,
        *,
        broker: Broker,
        store: MessageStore,
        metrics: Metrics,
        post_deadline: float = POST_DEADLINE_SECONDS,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._post_deadline = post_deadline
        self._lock_wait = lock_wait
        self._pending: Line[_Post] = Line(self._expired)
        self._task: asyncio.Task[None] | None = None
        #: Busy rooms' lines, each served by its lane's task.
        self._lanes: dict[str, Line[_Post]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        #: When each transaction now open began (the loop's time): the group commit's, lanes'.
        self._open_since: list[float] = []

    @property
    def stuck(self) -> bool:
        """A transaction has been open longer than a post may wait in line: its posts'
        deadlines have passed, and they cannot be answered until it ends."""
        if not self._open_since:
            return False
        now = asyncio.get_running_loop().time()
        return now - min(self._open_since) > self._post_deadline

    def submit(self, room: str, draft: store.Draft) -> asyncio.Future[Message]:
        """Queue a message; the future resolves once it is stored and published.

        While the broker is away a post is refused (``BackendUnavailableError``) rather
        than stored unseen; one stored just as it went away is recovered by the listeners.
        A post still in line ``post_deadline`` seconds later is refused, never stored.
        """
        if not self._broker.connected:
            raise BackendUnavailableError("the chat backend is reconnecting; try again shortly")
        loop = asyncio.get_running_loop()
        post = _Post(room, draft, loop.create_future(), loop.time() + self._post_deadline)
        lane = self._lanes.get(room)
        if lane is not None:
            lane.add(post)  # behind the room's earlier posts
            return post.stored
        self._pending.add(post)
        if self._task is None:
            failed = self._metrics.backend_errors.labels("writer").inc
            self._task = spawn(self._run(), name="roomchat-writer", on_failure=failed)
        return post.stored

    async def _run(self) -> None:
        try:
            while batch := self._pending.take():
                try:
                    busy = await self._commit(batch)
                except Exception:
                    # A bug must not leave a batch's senders waiting for ever (an HTTP
                    # post would hang): fail what is unanswered, loudly, and go on.
                    log.exception("the message writer failed on a batch of %d", len(batch))
                    self._metrics.backend_errors.labels("writer").inc()
                    _fail(batch, StoreUnavailableError(WRITER_FAILED))
                    continue
                for room, posts in busy.items():
                    self._open_lane(room, posts)
        finally:
            self._task = None

    def _open_lane(self, room: str, posts: list[_Post]) -> None:
        """Give a busy room a lane: ``posts`` first, then its posts still in line."""
        lane = self._lanes[room] = Line(self._expired)
        for post in posts + self._pending.take(room):
            lane.add(post)
        failed = self._metrics.backend_errors.labels("writer").inc
        task = spawn(self._run_lane(room, lane), name="roomchat-writer-lane", on_failure=failed)
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, room: str, lane: Line[_Post]) -> None:
        """Store a busy room's posts in order, in transactions of its own, each waiting for
        the room until the oldest post's deadline at most; until none is left."""
        loop = asyncio.get_running_loop()
        backoff = _Backoff()
        try:
            while batch := lane.take():
                wait = min(self._lock_wait, batch[0].deadline - loop.time())
                try:
                    await self._commit(batch, wait=max(wait, MIN_LOCK_WAIT_SECONDS))
                except _TryAgain as retry:
                    log.info("room %r: storing failed (%r); trying again", room, retry.__cause__)
                    lane.put_back([post for post in batch if not post.stored.done()])
                    await asyncio.sleep(backoff.pause())
                    continue
                except Exception:
                    log.exception("the message writer failed on a batch of %d", len(batch))
                    self._metrics.backend_errors.labels("writer").inc()
                    _fail(batch, StoreUnavailableError(WRITER_FAILED))
                backoff.reset()
        finally:
            lane.close()
            del self._lanes[room]  # no await since the last take: nothing is left behind

    async def _commit(
        self, batch: list[_Post], *, wait: float | None = None
    ) -> dict[str, list[_Post]]:
        """Store ``batch`` in one transaction, publish it, and tell its senders.

        Without ``wait`` (the group commit), the posts of rooms another writer holds are
        returned by room, in order, untouched. With it (a lane), ``_TryAgain`` says that
        nothing was stored and another attempt may succeed.
        """
        by_room: dict[str, list[_Post]] = {}
        for post in batch:
            by_room.setdefault(post.room, []).append(post)
        drafts = {room: [post.draft for post in posts] for room, posts in by_room.items()}
        began = asyncio.get_running_loop().time()
        self._open_since.append(began)
        try:
            stored = await self._store.add_messages_to_rooms(drafts=drafts, wait=wait)
        except store.CommitOutcomeUnknownError as exc:
            log.warning("storing %d messages: %s", len(batch), exc)
            self._metrics.backend_errors.labels("store").inc()
            _fail(batch, StoreOutcomeUnknownError(OUTCOME_UNKNOWN))
            return {}
        except Exception as exc:
            if wait is not None and store.worth_retrying(exc):
                raise _TryAgain from exc
            if len(batch) > 1 and not store.worth_retrying(exc):
                # One message the database refuses (its author deleted meanwhile) must
                # not cost the others theirs: store them one at a time, in order. (Not
                # for a timeout or a lost connection: each alone would meet it again.)
                log.warning("storing %d messages failed (%r); storing each alone", len(batch), exc)
                return await self._commit_each(batch, wait=wait)
            log.warning("storing %d messages failed: %r", len(batch), exc)
            self._metrics.backend_errors.labels("store").inc()
            _fail(batch, StoreUnavailableError(STORE_FAILED))
            return {}
        finally:
            self._open_since.remove(began)
        busy = {room: by_room.pop(room) for room in [r for r in by_room if r not in stored]}
        self._metrics.messages_received.inc(sum(len(s.messages) for s in stored.values()))
        for room, posts in by_room.items():
            await self._publish(room, stored[room])  # the new messages only
            # A post that repeats a client key hears of the message first stored with it.
            for post, message in zip(posts, stored[room].answers(), strict=True):
                if not post.stored.done():
                    post.stored.set_result(message)
        return busy

    async def _commit_each(
        self, batch: list[_Post], *, wait: float | None
    ) -> dict[str, list[_Post]]:
        """``_commit`` one post at a time; once a room is busy, its later posts wait with it."""
        busy: dict[str, list[_Post]] = {}
        for post in batch:
            if post.room in busy:
                busy[post.room].append(post)
                continue
            for room, posts in (await self._commit([post], wait=wait)).items():
                busy.setdefault(room, []).extend(posts)
        return busy

    def _expired(self, posts: list[_Post]) -> None:
        """Posts still in line at their deadline: refused, never to be stored."""
        log.warning("%d messages not stored within %g s", len(posts), self._post_deadline)
        self._metrics.backend_errors.labels("deadline").inc(len(posts))
        _fail(posts, StoreUnavailableError(NOT_STORED_IN_TIME))

    async def _publish(self, room: str, batch: store.StoredBatch) -> None:
        previous_id = batch.previous_id
        for message in batch.messages:
            try:
                payload = events.room_payload(events.message_event(message), previous_id)
                await self._broker.publish(room, payload)
            except BrokerUnavailableError as exc:
                # Stored, so not lost: listeners fetch it when the broker is back (a gap)
                # or when the next message names it as its predecessor.
                log.warning("message %d stored but not published: %s", message.id, exc)
                self._metrics.backend_errors.labels("publish").inc()
                return
            previous_id = message.id

    async def close(self) -> None:
        """Finish what is queued, the lanes' too."""
        while tasks := [task for task in (self._task, *self._lane_tasks) if task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.close()


def _fail(batch: list[_Post], error: Exception) -> None:
    for post in batch:
        if not post.stored.done():
            post.stored.set_exception(error)
