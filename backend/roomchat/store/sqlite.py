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
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy.dialects import sqlite

from roomchat.store import Draft, StoredBatch, UserRef
from roomchat.store.engine import SQLITE_BUSY_TIMEOUT, SQLITE_PRAGMAS
from roomchat.store.schema import MAX_MESSAGE_ID, Message, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

_TIME_TYPE = Message.__table__.c.created_at.type.dialect_impl(sqlite.dialect())
_to_text = cast(Callable[[datetime], str], _TIME_TYPE.bind_processor(sqlite.dialect()))
_from_text = cast(Callable[[str], datetime], _TIME_TYPE.result_processor(sqlite.dialect(), None))

_MESSAGE = "SELECT id, room, user_id, author, text, created_at FROM messages"
_INSERT = "INSERT INTO messages (room, user_id, author, text, created_at) VALUES (?, ?, ?, ?, ?)"
_LATEST = "SELECT max(id) FROM messages WHERE room = ?"
_USERS = "SELECT id, username, created_at FROM users WHERE lower(username) IN ({})"
_USERS_PER_QUERY = 500
_LAST_PAGE = f"{_MESSAGE} WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?"
_NEXT_PAGE = f"{_MESSAGE} WHERE room = ? AND id > ? AND id < ? ORDER BY id LIMIT ?"

#: While messages are being written, the checkpointer copies the WAL into the database
#: once per this many seconds, off the committing thread (see ``Checkpointer``), or
#: sooner, after this many commits.
CHECKPOINT_PAUSE = 0.05
CHECKPOINT_COMMITS = 200
#: Checkpoints the checkpointer tries in a row before it gives up waiting for a gap.
PASSES = 5
#: WAL frames (pages) beyond which, when no checkpoint of its own found a gap between two
#: commits, the checkpointer has the committing thread finish the copy (``Checkpointer``).
CATCH_UP_FRAMES = 1024
#: The store's own connection: the WAL file is cut back to this many bytes when it
#: restarts after a burst; and the committing thread checkpoints by itself only when the
#: WAL is this many pages long (a safety net: the checkpointer keeps it far shorter).
WAL_SIZE_LIMIT = 4 * 2**20
SAFETY_CHECKPOINT_FRAMES = 4 * CATCH_UP_FRAMES


class SQLiteStore:
    """The hot paths' queries on SQLite, each one hop to this store's own thread."""

    def __init__(
        self, executor: ThreadPoolExecutor, db: sqlite3.Connection, checkpointer: Checkpointer
    ) -> None:
        self._executor = executor
        self._db = db
        self.checkpointer = checkpointer

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        """Open ``path`` (the engine's own file) in a new thread, with the engine's pragmas,
        and start its checkpointer."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="roomchat-sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown()
            raise

        def catch_up() -> object:
            return executor.submit(_restart_wal, db).result()

        checkpointer = Checkpointer(path, catch_up)
        checkpointer.start()
        return cls(executor, db, checkpointer)

    async def close(self) -> None:
        """Stop the checkpointer, then close the connection (the last one to close a
        database checkpoints the WAL and deletes it)."""
        # Not on the store's thread: the checkpointer may be waiting for that thread.
        await asyncio.to_thread(self.checkpointer.stop)
        await self._run(sqlite3.Connection.close)
        self._executor.shutdown()

    async def _run(self, job: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job, self._db, *args)

    async def find_users(self, *, usernames: Sequence[str]) -> dict[str, UserRef]:
        """``store.find_users``: one query for many names (the index on ``lower(username)``
        serves it), in chunks well under SQLite's limit on bound parameters."""
        wanted = sorted({name.lower() for name in usernames})
        found: dict[str, UserRef] = {}
        for start in range(0, len(wanted), _USERS_PER_QUERY):
            chunk = tuple(wanted[start : start + _USERS_PER_QUERY])
            sql = _USERS.format(", ".join("?" * len(chunk)))
            for user_id, name, created in await self._run(_fetch_all, sql, chunk):
                found[name.lower()] = UserRef(user_id, name, _utc(_from_text(created)))
        return found

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this store's connection: it changes when
        another connection (the accounts' engine, another process) commits, never for
        this store's own writes, so watching it costs nothing while people chat."""
        row = await self._run(_fetch_one, "PRAGMA data_version", ())
        return int(row[0]) if row else 0

    async def add_messages_to_rooms(
        self, *, drafts: Mapping[str, Sequence[Draft]]
    ) -> dict[str, StoredBatch]:
        """One transaction for all rooms (a group commit): ``store.add_messages_to_rooms``."""
        rooms = sorted(drafts)
        created_at = utcnow()
        stamp = _to_text(created_at)
        rows = [(room, d.user_id, d.author, d.text, stamp) for room in rooms for d in drafts[room]]
        previous_ids, last_id = await self._run(_insert, rooms, rows)
        self.checkpointer.wrote()
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


class Checkpointer:
    """Copies the WAL into the database on its own thread and connection.

    Left to itself, SQLite checkpoints in the committing thread, in the commit that takes
    the WAL past 1,000 pages (``wal_autocheckpoint``): that commit syncs the WAL (4 MB
    written since the last checkpoint, as synchronous=NORMAL syncs nothing at commit),
    copies its pages into the database and syncs that: 3-7 ms, one commit in 300-450, in
    which every message waits. Here, while messages are written, a PASSIVE checkpoint runs
    every ``CHECKPOINT_PAUSE`` seconds (or ``CHECKPOINT_COMMITS`` commits) on this thread
    (sqlite3 lets go of the GIL), and takes no lock a writer waits for.

    A WAL only starts again from its beginning when a writer begins a transaction after
    a checkpoint has copied *every* frame and no reader still reads old ones; else it grows
    without end. So a checkpoint that did not catch up (a commit came in meanwhile) is
    followed at once by another, which has only a few frames to copy, until one finds
    nothing new: then the next transaction restarts the WAL. When commits come with no gap
    long enough (``PASSES`` in a row) and the WAL is past ``CATCH_UP_FRAMES``, the store's
    own thread copies the few frames left between two transactions with a RESTART
    checkpoint: a short stall, only under overload. (A RESTART checkpoint from this
    thread's connection waits out its busy timeout against the store's thread, which
    holds a read lock while it waits for the write lock in BEGIN: 5-9 ms stalls.)
    A reader holding an old snapshot still keeps the WAL from restarting until it ends.
    """

    def __init__(self, path: str, catch_up: Callable[[], object]) -> None:
        self._path = path
        self._catch_up = catch_up
        self._wrote = threading.Event()
        self._hurry = threading.Event()
        self._commits = 0  # since the last checkpoint, about (both threads reset or add)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name="roomchat-sqlite-checkpoint", daemon=True
        )
        #: Called (on the checkpointer's thread) when a checkpoint fails: for a metric.
        self.on_error: Callable[[], None] | None = None
        #: Counts, for tests and the bench: checkpoints run, catch-ups, failures.
        self.passes = 0
        self.catch_ups = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """A transaction was committed (called on the event loop: cheap)."""
        self._commits += 1
        if not self._wrote.is_set():
            self._wrote.set()
        elif self._commits >= CHECKPOINT_COMMITS and not self._hurry.is_set():
            self._hurry.set()

    def stop(self) -> None:
        """Stop the thread and wait for it (blocks: not on the event loop)."""
        self._stopping.set()
        self._wrote.set()
        self._hurry.set()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=1.0, isolation_level=None)
        except sqlite3.Error:
            log.warning("SQLite checkpointer could not connect to %s", self._path, exc_info=True)
            self._failed()
            return
        try:
            while not self._stopping.is_set():
                self._wrote.wait()
                # Let commits gather: one checkpoint per pause while messages come in.
                self._hurry.wait(CHECKPOINT_PAUSE)
                if self._stopping.is_set():
                    break
                self._wrote.clear()
                self._hurry.clear()
                self._commits = 0
                try:
                    self._checkpoint(db)
                except Exception:  # logged and counted; the next round tries again
                    log.warning("SQLite checkpoint of %s failed", self._path, exc_info=True)
                    self._failed()
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        if self._copy(db) >= CATCH_UP_FRAMES and not self._stopping.is_set():
            # Commits come with no gap long enough for a pass: let the committing thread
            # copy the few frames left itself, between two of its transactions.
            self.catch_ups += 1
            self._catch_up()

    def _copy(self, db: sqlite3.Connection) -> int:
        """PASSIVE checkpoints until the WAL is to restart: the WAL's length last seen."""
        before = frames = -1
        for _ in range(PASSES):
            self.passes += 1
            ((busy, frames, copied),) = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if busy or frames < before:  # another one is checkpointing; the WAL restarted
                break
            if frames == copied == before:
                # All copied, and nothing came in since the last pass began (a checkpoint
                # reports the length the WAL had when it began): the next transaction
                # should start the WAL again. Wait for one, and see.
                self._wrote.clear()
                if not self._wrote.wait(CHECKPOINT_PAUSE) or self._stopping.is_set():
                    break
            before = frames
        return int(frames)

    def _failed(self) -> None:
        self.failures += 1
        if self.on_error is not None:
            self.on_error()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    db.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT_FRAMES}")
    return db


def _fetch_one(db: sqlite3.Connection, sql: str, params: Row) -> Row | None:
    return cast(Row | None, db.execute(sql, params).fetchone())


def _fetch_all(db: sqlite3.Connection, sql: str, params: Row) -> list[Row]:
    return db.execute(sql, params).fetchall()


def _restart_wal(db: sqlite3.Connection) -> Row:
    """Copy what is left of the WAL, between two of this thread's transactions, so that
    the next one starts the WAL again: waits for readers of old frames 10 ms at most."""
    db.execute("PRAGMA busy_timeout=10")
    try:
        return cast(Row, db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()[0])
    finally:
        db.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")


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
