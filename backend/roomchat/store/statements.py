"""Every query of the store, written once as SQLAlchemy Core statements.

The engine runner (through_engine.py) hands them to SQLAlchemy; the SQLite fast path
(sqlite.py) compiles each once for SQLite and runs it on its own thread. Parameters are
``bindparam``s named here; ``Queries`` (queries.py) supplies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
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

from roomchat.store.runner import Params, Row, Transaction
from roomchat.store.schema import Message, MessageId, User, UTCDateTime

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
#: ``room``, ``client_ids``, ``since``: the room's messages with those client keys stored
#: after ``since``, by anyone (the caller keeps each user's own). The partial index on
#: (room, client_id, created_at) serves it, one lookup per key, in the window only. (With
#: ``user_id IN`` as well, an index on it looked up every combination of users and keys:
#: 90 ms on SQLite for a batch of 300 senders.)
KEYED_SINCE = select(messages).where(
    _room,
    messages.c.client_id.in_(bindparam("client_ids", expanding=True, type_=String)),
    messages.c.created_at > bindparam("since", type_=UTCDateTime),
)
#: Keys looked up per ``KEYED_SINCE``: well under SQLite's oldest limit on bound
#: parameters (999).
KEYS_PER_QUERY = 500
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


#: A message's client key: who sent it where, with which key.
ClientKey = tuple[str, int, str]


def client_key(row: Params) -> ClientKey | None:
    """``(room, user_id, client_id)`` of a row to insert, or None when it has no key."""
    client_id = row["client_id"]
    return None if client_id is None else (row["room"], row["user_id"], client_id)


def store_batches(
    transaction: Transaction,
    rows: Mapping[str, Sequence[Params]],
    wait: float | None = None,
    since: datetime | None = None,
) -> tuple[dict[str, int], list[int], dict[int, Row]]:
    """Insert each room's ``rows`` in one transaction: ``(previous id per room, ids,
    earlier)``.

    Rooms are taken in name order, so two writers never wait on each other crosswise;
    once a room is this transaction's, its newest id is the one just before the new rows.
    Without ``wait``, a room another transaction holds is left out (not in the previous
    ids, nothing of it inserted); with it, each room is waited for up to ``wait`` seconds.
    ``ids`` has one id per row of the rooms taken: their name order, then each room's
    rows in the order given. Without ``since`` every such row is inserted and ``ids`` are
    the new ones.

    With ``since`` (the caller's sign that some row has a client key), each room with keyed
    rows is searched for their keys once it is this transaction's, and a keyed row whose
    key (``client_key``) was used after ``since``, or by an earlier row here, is not
    inserted: its id is the first message's, and ``earlier`` holds the rows (``KEYED_SINCE``
    columns) of the messages stored before this transaction that rows repeat, by id. No
    other writer can add a key to a room this transaction holds.
    """
    previous: dict[str, int] = {}
    found: dict[ClientKey, Row] = {}
    for room in sorted(rows):
        if not transaction.take_room(room, wait=wait):
            continue  # another writer holds it: left out, for the caller's lane
        previous[room] = transaction.scalar(LATEST_ID, {"room": room}) or 0
        if since is not None:
            found |= _keyed_since(transaction, room, rows[room], since)
    ordered = [row for room in previous for row in rows[room]]
    if since is None:
        return previous, transaction.insert_many(INSERT_MESSAGE, ordered), {}
    fresh: list[Params] = []
    # Per row: its place among the fresh rows, or the earlier message it repeats.
    places: list[int | Row] = []
    firsts: dict[ClientKey, int] = {}
    for row in ordered:
        key = client_key(row)
        if key is not None and key in found:
            places.append(found[key])
        elif key is not None and key in firsts:
            places.append(firsts[key])
        else:
            if key is not None:
                firsts[key] = len(fresh)
            places.append(len(fresh))
            fresh.append(row)
    new_ids = transaction.insert_many(INSERT_MESSAGE, fresh)
    ids = [new_ids[place] if isinstance(place, int) else place[0] for place in places]
    return previous, ids, {row[0]: row for row in found.values()}


def _keyed_since(
    transaction: Transaction, room: str, rows: Sequence[Params], since: datetime
) -> dict[ClientKey, Row]:
    """The first message stored in ``room`` after ``since`` with each keyed row's key."""
    wanted = {key for row in rows if (key := client_key(row)) is not None}
    client_ids = sorted({client_id for _, _, client_id in wanted})
    found: dict[ClientKey, Row] = {}
    for start in range(0, len(client_ids), KEYS_PER_QUERY):
        chunk = client_ids[start : start + KEYS_PER_QUERY]
        params = {"room": room, "client_ids": chunk, "since": since}
        for row in transaction.rows(KEYED_SINCE, params):
            id_, _, user_id, _, _, _, client_id = row  # the table's columns, in its order
            key = (room, user_id, client_id)
            if key in wanted and (key not in found or id_ < found[key][0]):
                found[key] = row
    return found
