"""The message store on a SQLite file: one thread owns one ``sqlite3`` connection.

Why: through SQLAlchemy's async layer and aiosqlite, one write transaction is five round
trips to aiosqlite's thread, about 1 ms of CPU. Here every call is one hop to the thread,
and what runs there is a few calls into ``sqlite3``'s C code, which lets go of the GIL
while SQLite works, so the event loop keeps it. (The same transaction through the
synchronous ORM in a thread held the GIL long enough to add 200 ms to the loop's p99.)
Rows are prepared, and turned back into ``Message`` objects, on the loop's side.

Rows look exactly as SQLAlchemy writes them: times go through the model column's own
type processors (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so the HTTP API, which reads
through SQLAlchemy, sees the same messages.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy.dialects import sqlite

from roomchat.db import SQLITE_BUSY_TIMEOUT, SQLITE_PRAGMAS
from roomchat.models import MAX_MESSAGE_ID, Message, User, utcnow
from roomchat.store import Draft, StoredBatch

T = TypeVar("T")
Row = tuple[Any, ...]

_TIME_TYPE = Message.__table__.c.created_at.type.dialect_impl(sqlite.dialect())
_to_text = cast(Callable[[datetime], str], _TIME_TYPE.bind_processor(sqlite.dialect()))
_from_text = cast(Callable[[str], datetime], _TIME_TYPE.result_processor(sqlite.dialect(), None))

_MESSAGE = "SELECT id, room, user_id, author, text, created_at FROM messages"
_INSERT = "INSERT INTO messages (room, user_id, author, text, created_at) VALUES (?, ?, ?, ?, ?)"
_LATEST = "SELECT max(id) FROM messages WHERE room = ?"
_USER = "SELECT id, username, password_hash, created_at FROM users WHERE lower(username) = ?"
_LAST_PAGE = f"{_MESSAGE} WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?"
_NEXT_PAGE = f"{_MESSAGE} WHERE room = ? AND id > ? AND id < ? ORDER BY id LIMIT ?"


class SQLiteStore:
    """The hot paths' queries on SQLite, each one hop to this store's own thread."""

    def __init__(self, executor: ThreadPoolExecutor, db: sqlite3.Connection) -> None:
        self._executor = executor
        self._db = db

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        """Open ``path`` (the engine's own file) in a new thread, with the engine's pragmas."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="roomchat-sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown()
            raise
        return cls(executor, db)

    async def close(self) -> None:
        await self._run(sqlite3.Connection.close)
        self._executor.shutdown()

    async def _run(self, job: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job, self._db, *args)

    async def get_user(self, *, username: str) -> User | None:
        """Find a user by name, ignoring case (the index on ``lower(username)`` serves it)."""
        row = await self._run(_fetch_one, _USER, (username.lower(),))
        if row is None:
            return None
        user_id, name, password_hash, created_at = row
        return User(
            id=user_id,
            username=name,
            password_hash=password_hash,
            created_at=_from_text(created_at),
        )

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[Draft]]
    ) -> dict[str, StoredBatch]:
        """One transaction for all rooms (a group commit): ``store.add_messages_to_rooms``."""
        rooms = sorted(drafts)
        created_at = utcnow()
        stamp = _to_text(created_at)
        rows = [(room, d.user_id, d.author, d.text, stamp) for room in rooms for d in drafts[room]]
        previous_ids, last_id = await self._run(_insert, rooms, rows)
        next_id = last_id - len(rows) + 1
        stored: dict[str, StoredBatch] = {}
        for room, previous_id in zip(rooms, previous_ids, strict=True):
            messages = []
            for d in drafts[room]:
                messages.append(
                    Message(
                        id=next_id,
                        room=room,
                        user_id=d.user_id,
                        author=d.author,
                        text=d.text,
                        created_at=created_at,
                    )
                )
                next_id += 1
            stored[room] = StoredBatch(previous_id, messages)
        return stored

    async def latest_message_id(self, *, room: str) -> int:
        """The id of the room's newest message (0 when it has none)."""
        row = await self._run(_fetch_one, _LATEST, (room,))
        return cast(int | None, row[0] if row else None) or 0

    async def list_messages(
        self, *, room: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        """A page of a room's messages, oldest first; see ``store.list_messages``."""
        # No bound is "below the largest id": the id 2**63 - 1 itself is never handed out.
        below = MAX_MESSAGE_ID if before is None else min(before, MAX_MESSAGE_ID)
        if after is not None:
            above = min(after, MAX_MESSAGE_ID)
            rows = await self._run(_fetch_all, _NEXT_PAGE, (room, above, below, limit))
            return _messages(rows)
        rows = await self._run(_fetch_all, _LAST_PAGE, (room, below, limit))
        return _messages(reversed(rows))

    async def list_messages_after(self, *, room: str, after: int) -> list[Message]:
        """Every message of a room after ``after``, oldest first (SQLite: LIMIT -1 is none)."""
        return await self.list_messages(room=room, after=after, limit=-1)


def _messages(rows: Any) -> list[Message]:
    return [
        Message(
            id=id_, room=room, user_id=user_id, author=author, text=text, created_at=_from_text(ts)
        )
        for id_, room, user_id, author, text, ts in rows
    ]


# -- in the store's thread: calls into sqlite3 and little else ----------------------------


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; _insert says BEGIN and COMMIT itself.
    db = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        db.execute(pragma)
    return db


def _fetch_one(db: sqlite3.Connection, sql: str, params: Row) -> Row | None:
    return cast(Row | None, db.execute(sql, params).fetchone())


def _fetch_all(db: sqlite3.Connection, sql: str, params: Row) -> list[Row]:
    return db.execute(sql, params).fetchall()


def _insert(db: sqlite3.Connection, rooms: list[str], rows: list[Row]) -> tuple[list[int], int]:
    """Each room's newest id, then insert ``rows`` in order: ``(previous ids, last new id)``.

    BEGIN IMMEDIATE takes SQLite's one write lock first, so no other writer (worker or
    process) commits in between: the newest ids read are those just before the new rows,
    and the new rows take consecutive ids in the order given (an INTEGER PRIMARY KEY
    without AUTOINCREMENT is the largest id plus one; SQLAlchemy relies on this as well).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        previous = [db.execute(_LATEST, (room,)).fetchone()[0] or 0 for room in rooms]
        db.executemany(_INSERT, rows)
        last_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return previous, last_id
