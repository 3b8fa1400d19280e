"""The message writer: store, then publish, every message posted in this process.

One writer per process takes everything posted while it was busy, from every room, and
stores it in one transaction (a group commit); then it publishes each room's new messages
in id order, each naming the message before it, and only then tells the senders. A sender
can keep posting meanwhile: its posts wait in line and go into the next transaction. A
post that repeats its sender's client key stores and publishes nothing: its sender is told
of the message first stored with that key.

``submit`` is the one way in, for sockets and HTTP alike.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime import events
from roomchat.realtime.broker import Broker, BrokerUnavailableError
from roomchat.realtime.tasks import spawn
from roomchat.store.messages import MessageStore
from roomchat.store.schema import Message

log = logging.getLogger(__name__)


class ChatUnavailableError(Exception):
    """A message was not delivered; a socket hears ``code`` in an error frame, HTTP a 503."""

    code: str


class StoreUnavailableError(ChatUnavailableError):
    """The message could not be stored, so it was not delivered."""

    code = "store_unavailable"


class BackendUnavailableError(ChatUnavailableError):
    """The shared backend (Redis) is away: the message was refused, not stored."""

    code = "unavailable"


WRITER_FAILED = "the server failed while storing the message; it may or may not be stored"


@dataclass(eq=False, slots=True)
class _Post:
    room: str
    draft: store.Draft
    stored: asyncio.Future[Message]


class MessageWriter:
    def __init__(self, *, broker: Broker, store: MessageStore, metrics: Metrics) -> None:
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._pending: list[_Post] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, room: str, draft: store.Draft) -> asyncio.Future[Message]:
        """Queue a message; the future resolves once it is stored and published.

        While the broker is away a post is refused (``BackendUnavailableError``) rather
        than stored unseen; one stored just as it went away is recovered by the listeners.
        """
        if not self._broker.connected:
            raise BackendUnavailableError("the chat backend is reconnecting; try again shortly")
        post = _Post(room, draft, asyncio.get_running_loop().create_future())
        self._pending.append(post)
        if self._task is None:
            failed = self._metrics.backend_errors.labels("writer").inc
            self._task = spawn(self._run(), name="roomchat-writer", on_failure=failed)
        return post.stored

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._commit(batch)
                except Exception:
                    # A bug must not leave a batch's senders waiting for ever (an HTTP
                    # post would hang): fail what is unanswered, loudly, and go on.
                    log.exception("the message writer failed on a batch of %d", len(batch))
                    self._metrics.backend_errors.labels("writer").inc()
                    _fail(batch, StoreUnavailableError(WRITER_FAILED))
        finally:
            self._task = None

    async def _commit(self, batch: list[_Post]) -> None:
        by_room: dict[str, list[_Post]] = {}
        for post in batch:
            by_room.setdefault(post.room, []).append(post)
        drafts = {room: [post.draft for post in posts] for room, posts in by_room.items()}
        try:
            stored = await self._store.add_messages_to_rooms(drafts=drafts)
        except Exception as exc:
            if len(batch) > 1:
                # One message the database refuses (its author deleted meanwhile, say) must
                # not cost the others theirs: store them one at a time, in order.
                log.warning("storing %d messages failed (%r); storing each alone", len(batch), exc)
                for post in batch:
                    await self._commit([post])
                return
            log.warning("storing a message failed: %r", exc)
            self._metrics.backend_errors.labels("store").inc()
            _fail(batch, StoreUnavailableError("the message could not be stored"))
            return
        self._metrics.messages_received.inc(sum(len(s.messages) for s in stored.values()))
        for room, posts in by_room.items():
            await self._publish(room, stored[room])  # the new messages only
            # A post that repeats a client key hears of the message first stored with it.
            for post, message in zip(posts, stored[room].answers(), strict=True):
                if not post.stored.done():
                    post.stored.set_result(message)

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
        """Finish what is queued."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _fail(batch: list[_Post], error: Exception) -> None:
    for post in batch:
        if not post.stored.done():
            post.stored.set_exception(error)
