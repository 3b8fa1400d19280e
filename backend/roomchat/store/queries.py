"""The store's operations, once, over any ``Runner``: users and messages.

``EngineStore`` (through_engine.py) and ``SQLiteStore`` (sqlite.py) are this class over
their runners; the statements themselves are in statements.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import configure_mappers, instrumentation

from roomchat.store import statements
from roomchat.store.messages import CLIENT_ID_WINDOW, Draft, StoredBatch
from roomchat.store.runner import Runner, Transaction
from roomchat.store.schema import MAX_MESSAGE_ID, Message, User, utcnow
from roomchat.store.users import UsernameTakenError, UserRef

T = TypeVar("T")

#: Names looked up per query: well under SQLite's limit on bound parameters.
USERS_PER_QUERY = 500


class Queries:
    """A ``UserStore`` and a ``MessageStore``: each operation is a statement or two of
    statements.py, run by the runner."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    @property
    def reuses_ids(self) -> bool:
        return self._runner.dialect == "sqlite"

    async def close(self) -> None:
        await self._runner.close()

    # -- users ---------------------------------------------------------------------------

    async def create_user(self, *, username: str, password_hash: str) -> User:
        created_at = utcnow()
        row = {"username": username, "password_hash": password_hash, "created_at": created_at}
        try:
            user_id = await self._runner.transact(_scalar, statements.CREATE_USER, row)
        except IntegrityError:  # the unique index on lower(username)
            raise UsernameTakenError(username) from None
        return _user(id=user_id, **row)

    async def get_user(self, *, username: str) -> User | None:
        rows = await self._runner.fetch(statements.USER_BY_NAME, {"name": username.lower()})
        if not rows:
            return None
        user_id, name, password_hash, created_at = rows[0]
        return _user(id=user_id, username=name, password_hash=password_hash, created_at=created_at)

    async def delete_user(self, *, username: str) -> bool:
        params = {"name": username.lower()}
        return await self._runner.transact(_rowcount, statements.DELETE_USER, params) > 0

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, UserRef]:
        wanted = sorted({name.lower() for name in usernames})
        found: dict[str, UserRef] = {}
        for start in range(0, len(wanted), USERS_PER_QUERY):
            chunk = wanted[start : start + USERS_PER_QUERY]
            for user_id, name, created in await self._runner.fetch(
                statements.USERS_BY_NAME, {"names": chunk}
            ):
                found[name.lower()] = UserRef(user_id, name, created)
        return found

    async def list_users(self, *, after: int = 0, limit: int = 500) -> list[UserRef]:
        rows = await self._runner.fetch(statements.USERS_PAGE, {"after": after, "limit": limit})
        return [UserRef(user_id, name, created) for user_id, name, created in rows]

    async def set_password_hash(self, *, username: str, password_hash: str) -> bool:
        params = {"name": username.lower(), "password_hash": password_hash}
        return await self._runner.transact(_rowcount, statements.SET_PASSWORD_HASH, params) > 0

    # -- messages ------------------------------------------------------------------------

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[Draft]], wait: float | None = None
    ) -> dict[str, StoredBatch]:
        created_at = utcnow()
        rows = {
            room: [
                {
                    "room": room,
                    "user_id": d.user_id,
                    "author": d.author,
                    "text": d.text,
                    "created_at": created_at,
                }
                for d in room_drafts
            ]
            for room, room_drafts in drafts.items()
        }
        if any(d.client_id is not None for batch in drafts.values() for d in batch):
            since = created_at - CLIENT_ID_WINDOW
            return await self._add_keyed(drafts, rows, wait=wait, since=since)
        # No key: the statements and the rows of version 1 (a bound NULL per row cost a
        # fifth more CPU per message on the SQLite fast path). The records' client_id, a
        # column they were not given, reads None.
        previous, new_ids, _ = await self._runner.transact(statements.store_batches, rows, wait)
        ids = iter(new_ids)
        return {  # the rooms stored, in name order: a busy one is left out
            room: StoredBatch(previous[room], [_message(id=next(ids), **row) for row in rows[room]])
            for room in previous
        }

    async def _add_keyed(
        self,
        drafts: Mapping[str, Sequence[Draft]],
        rows: dict[str, list[dict[str, Any]]],
        *,
        wait: float | None,
        since: datetime,
    ) -> dict[str, StoredBatch]:
        """A batch with client keys: one more query finds what it repeats (``since`` is
        the oldest a key's first message may be)."""
        for room, room_drafts in drafts.items():
            for row, draft in zip(rows[room], room_drafts, strict=True):
                row["client_id"] = draft.client_id
        stored = await self._runner.transact(statements.store_batches, rows, wait, since)
        return _batches(rows, *stored)

    async def latest_message_id(self, *, room: str) -> int:
        rows = await self._runner.fetch(statements.LATEST_ID, {"room": room})
        return (rows[0][0] if rows else None) or 0

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        # No bound is "below the largest id": the id 2**63 - 1 itself is never handed out.
        below = MAX_MESSAGE_ID if before is None else min(before, MAX_MESSAGE_ID)
        if after is not None:
            params = {"room": room, "above": min(after, MAX_MESSAGE_ID), "below": below}
            rows = await self._runner.fetch(statements.NEXT_PAGE, {**params, "limit": limit})
            return _messages(rows)
        params = {"room": room, "below": below, "limit": limit}
        return _messages(reversed(await self._runner.fetch(statements.LAST_PAGE, params)))

    async def rooms_with_messages(self, *, limit: int, after: str | None = None) -> list[str]:
        statement = statements.rooms_page(self._runner.dialect)
        rows = await self._runner.fetch(statement, {"after": after or "", "limit": limit})
        return [room for (room,) in rows]


def _record(cls: type[T]) -> Callable[..., T]:
    """Make ``cls`` instances as the ORM's loader does, without an attribute event per
    field (a seventh of the constructor's CPU): records of rows, never added to a session."""
    configure_mappers()  # as a first constructor call would: attributes get their impls
    new_instance = instrumentation.manager_of_class(cls).new_instance

    def make(**values: Any) -> T:
        record: T = new_instance()
        record.__dict__.update(values)
        return record

    return make


_user = _record(User)
_message = _record(Message)


def _messages(rows: Any) -> list[Message]:
    return [_message_of(row) for row in rows]


def _message_of(row: Any) -> Message:
    """A record of a ``select(messages)`` row (the table's columns, in its order)."""
    id_, room, user_id, author, text, created_at, client_id = row
    return _message(
        id=id_,
        room=room,
        user_id=user_id,
        author=author,
        text=text,
        created_at=created_at,
        client_id=client_id,
    )


def _batches(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    previous: Mapping[str, int],
    ids: Sequence[int],
    earlier: Mapping[int, Any],
) -> dict[str, StoredBatch]:
    """Each room's ``StoredBatch``, from ``store_batches``' answer for keyed rows: a row
    whose id is an earlier message's, or a keyed row's earlier in the batch, repeats it.
    A room another writer held (not in ``previous``) is left out, as it was stored."""
    batches: dict[str, StoredBatch] = {}
    first_with_key: dict[int, Message] = {}  # by id: this batch's keyed messages
    place = iter(ids)
    for room in previous:
        stored: list[Message] = []
        repeats: dict[int, Message] = {}
        for index, row in enumerate(rows[room]):
            id_ = next(place)
            if id_ in earlier:
                repeats[index] = _message_of(earlier[id_])
            elif id_ in first_with_key:
                repeats[index] = first_with_key[id_]
            else:
                message = _message(id=id_, **row)
                stored.append(message)
                if row["client_id"] is not None:
                    first_with_key[id_] = message
        batches[room] = StoredBatch(previous[room], stored, repeats)
    return batches


def _scalar(transaction: Transaction, statement: Any, params: Mapping[str, Any]) -> Any:
    return transaction.scalar(statement, params)


def _rowcount(transaction: Transaction, statement: Any, params: Mapping[str, Any]) -> int:
    return transaction.rowcount(statement, params)
