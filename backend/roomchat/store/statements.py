"""Every query of the store, written once as SQLAlchemy Core statements.

The engine runner (through_engine.py) hands them to SQLAlchemy; the SQLite fast path
(sqlite.py) compiles each once for SQLite and runs it on its own thread. Parameters are
``bindparam``s named here; ``Queries`` (queries.py) supplies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.sql import Select

from roomchat.store.runner import Params, Transaction
from roomchat.store.schema import Message, MessageId, User

users: Table = User.__table__  # type: ignore[assignment]
messages: Table = Message.__table__  # type: ignore[assignment]

_lower_name = func.lower(users.c.username)  # the unique index is on it

# -- users -------------------------------------------------------------------------------

#: ``name``: lowercased.
USER_BY_NAME = select(users).where(_lower_name == bindparam("name", type_=String))
#: ``names``: lowercased; one query for many (the index on ``lower(username)`` serves it).
USERS_BY_NAME = select(users.c.id, users.c.username, users.c.created_at).where(
    _lower_name.in_(bindparam("names", expanding=True, type_=String))
)
#: Parameters: ``username``, ``password_hash``, ``created_at``.
CREATE_USER = insert(users).returning(users.c.id)
#: ``name``: lowercased. Messages stay, their ``user_id`` set to NULL.
DELETE_USER = delete(users).where(_lower_name == bindparam("name", type_=String))
#: ``name``: lowercased; ``password_hash``.
SET_PASSWORD_HASH = (
    update(users)
    .where(_lower_name == bindparam("name", type_=String))
    .values(password_hash=bindparam("password_hash", type_=String))
)
#: ``after``, ``limit``: a page of accounts by id, for the operator (``roomchat user list``).
USERS_PAGE = (
    select(users.c.id, users.c.username, users.c.created_at)
    .where(users.c.id > bindparam("after", type_=Integer))
    .order_by(users.c.id)
    .limit(bindparam("limit", type_=Integer))
)

# -- messages ----------------------------------------------------------------------------

_room = messages.c.room == bindparam("room", type_=String)
_limit = bindparam("limit", type_=Integer)

#: ``room``.
LATEST_ID = select(func.max(messages.c.id)).where(_room)
#: Parameters: ``room``, ``user_id``, ``author``, ``text``, ``created_at``.
INSERT_MESSAGE = insert(messages)
#: ``room``, ``below``, ``limit``: the newest ``limit`` messages below ``below``, newest first.
LAST_PAGE = (
    select(messages)
    .where(_room, messages.c.id < bindparam("below", type_=MessageId))
    .order_by(messages.c.id.desc())
    .limit(_limit)
)
#: ``room``, ``above``, ``below``, ``limit``: the oldest ``limit`` messages between them.
NEXT_PAGE = (
    select(messages)
    .where(
        _room,
        messages.c.id > bindparam("above", type_=MessageId),
        messages.c.id < bindparam("below", type_=MessageId),
    )
    .order_by(messages.c.id)
    .limit(_limit)
)
_room_key = func.hashtextextended(bindparam("key", type_=String), literal(0))
#: ``key``: a room's lock on PostgreSQL, held until the transaction ends; true when it
#: was free, false (at once, without waiting) when another transaction holds it.
TRY_LOCK_ROOM = select(func.pg_try_advisory_xact_lock(_room_key))
#: ``key``: the same lock, waited for (as long as ``lock_timeout`` allows).
LOCK_ROOM = select(func.pg_advisory_xact_lock(_room_key))
#: ``timeout``: PostgreSQL's ``lock_timeout`` for the rest of this transaction (``"500ms"``).
LOCK_TIMEOUT_HERE = select(
    func.set_config(literal("lock_timeout"), bindparam("timeout", type_=String), literal(True))
)
#: SQLite: the rowid the connection's last INSERT gave its last row.
LAST_ROWID = select(func.last_insert_rowid())


@cache
def rooms_page(dialect: str) -> Select[tuple[str]]:
    """``after``, ``limit``: room names in byte order. PostgreSQL is told ``COLLATE "C"``;
    SQLite's default (BINARY) already is."""
    room: Any = messages.c.room.collate("C") if dialect == "postgresql" else messages.c.room
    after = bindparam("after", type_=String)
    return select(room).distinct().where(room > after).order_by(room).limit(_limit)


def room_lock_key(room: str) -> str:
    return f"roomchat.room:{room}"


# -- the group commit ----------------------------------------------------------------------


def store_batches(
    transaction: Transaction, rows: Mapping[str, Sequence[Params]], wait: float | None = None
) -> tuple[dict[str, int], list[int]]:
    """Insert each room's ``rows`` in one transaction: ``(previous id per room, new ids)``.

    Rooms are taken in name order, so two writers never wait on each other crosswise;
    once a room is this transaction's, its newest id is the one just before the new rows.
    The new ids follow the rooms' name order, then each room's rows in the order given.
    Without ``wait``, a room another transaction holds is left out (not in the previous
    ids, nothing of it inserted); with it, each room is waited for up to ``wait`` seconds.
    """
    previous: dict[str, int] = {}
    for room in sorted(rows):
        if transaction.take_room(room, wait=wait):
            previous[room] = transaction.scalar(LATEST_ID, {"room": room}) or 0
    new_ids = transaction.insert_many(
        INSERT_MESSAGE, [row for room in previous for row in rows[room]]
    )
    return previous, new_ids
