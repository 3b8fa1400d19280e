"""The store on a SQLite file: statements.py's statements, run by one thread that owns one
``sqlite3`` connection.

Why: through SQLAlchemy's async layer and aiosqlite, one write transaction is five round
trips to aiosqlite's thread, about 1 ms of CPU. Here every call is one hop to the thread,
and what runs there is a few calls into ``sqlite3``'s C code, which lets go of the GIL
while SQLite works, so the event loop keeps it. (The same transaction through the
synchronous ORM in a thread held the GIL long enough to add 200 ms to the loop's p99.)
Statements are compiled once for SQLite (compiled.py); parameters are bound, and rows
read back, on the loop's side, except in a write transaction, which runs whole in the
thread. Errors are raised as SQLAlchemy would raise them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate

from sqlalchemy import exc, text
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert

from roomchat.store import statements
from roomchat.store.compiled import Statements
from roomchat.store.engine import SQLITE_BUSY_TIMEOUT, SQLITE_PRAGMAS
from roomchat.store.queries import Queries
from roomchat.store.runner import P, Params, Row, T
from roomchat.store.wal import (
    SAFETY_CHECKPOINT_FRAMES,
    WAL_SIZE_LIMIT,
    Checkpointer,
    restart_wal,
)

DATA_VERSION = text("PRAGMA data_version")


class SQLiteStore(Queries):
    """``Queries`` on a SQLite file, each call one hop to this store's own thread."""

    def __init__(self, runner: SQLiteRunner) -> None:
        super().__init__(runner)
        self._sqlite = runner

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        """Open ``path`` (the engine's own file) in a new thread, with the engine's pragmas,
        and start its checkpointer."""
        return cls(await SQLiteRunner.open(path))

    @property
    def checkpointer(self) -> Checkpointer:
        return self._sqlite.checkpointer

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this store's connection: it changes when
        another connection (another process, ``roomchat user delete``) commits, never for
        this store's own writes, so watching it costs nothing while people chat."""
        rows = await self._sqlite.fetch(DATA_VERSION, {})
        return int(rows[0][0]) if rows else 0


class SQLiteRunner:
    """A ``Runner`` on one ``sqlite3`` connection, used only by its one thread."""

    dialect = "sqlite"

    def __init__(
        self, executor: ThreadPoolExecutor, db: sqlite3.Connection, checkpointer: Checkpointer
    ) -> None:
        self._executor = executor
        self._db = db
        self._statements = Statements()
        self.checkpointer = checkpointer

    @classmethod
    async def open(cls, path: str) -> SQLiteRunner:
        executor = ThreadPoolExecutor(1, thread_name_prefix="roomchat-sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown()
            raise

        def catch_up() -> object:
            return executor.submit(restart_wal, db).result()

        checkpointer = Checkpointer(path, catch_up)
        checkpointer.start()
        return cls(executor, db, checkpointer)

    async def fetch(self, statement: Executable, params: Params) -> Sequence[Row]:
        compiled = self._statements(statement, params)
        sql, values = compiled.bind(params)
        return compiled.rows(await self._run(_fetch_all, sql, values))

    async def transact(
        self, work: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        def run(db: sqlite3.Connection) -> T:
            transaction = SQLiteTransaction(db, self._statements)
            return _transact(db, lambda: work(transaction, *args, **kwargs))

        result = await self._run(run)
        self.checkpointer.wrote()
        return result

    async def close(self) -> None:
        """Stop the checkpointer, then close the connection (the last one to close a
        database checkpoints the WAL and deletes it)."""
        # Not on the store's thread: the checkpointer may be waiting for that thread.
        await asyncio.to_thread(self.checkpointer.stop)
        await self._run(sqlite3.Connection.close)
        self._executor.shutdown()

    async def _run(self, job: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, job, self._db, *args)
        except sqlite3.Error as error:
            raise _as_sqlalchemy(error) from error


class SQLiteTransaction:
    """A ``Transaction`` in the store's thread, inside ``BEGIN IMMEDIATE``: SQLite's one
    write lock is held, so no other writer (worker or process) commits until it ends."""

    def __init__(self, db: sqlite3.Connection, compiled: Statements) -> None:
        self._db = db
        self._compiled = compiled

    def take_room(self, room: str, *, wait: float | None = None) -> bool:
        """Every room is this transaction's already."""
        return True

    def scalar(self, statement: Executable, params: Params) -> Any:
        compiled = self._compiled(statement, params)
        rows = compiled.rows(self._db.execute(*compiled.bind(params)).fetchall())
        return rows[0][0] if rows else None

    def rowcount(self, statement: Executable, params: Params) -> int:
        return self._db.execute(*self._compiled(statement, params).bind(params)).rowcount

    def rows(self, statement: Executable, params: Params) -> Sequence[Row]:
        compiled = self._compiled(statement, params)
        return compiled.rows(self._db.execute(*compiled.bind(params)).fetchall())

    def insert_many(self, statement: Insert, rows: Sequence[Params]) -> list[int]:
        if not rows:
            return []
        compiled = self._compiled(statement, rows[0])
        self._db.executemany(compiled.sql, compiled.bind_many(rows))
        # An INTEGER PRIMARY KEY without AUTOINCREMENT is the largest id plus one: under
        # the write lock the rows took consecutive ids, in the order given.
        last = int(self.scalar(statements.LAST_ROWID, {}))
        return list(range(last - len(rows) + 1, last + 1))


# -- in the store's thread: calls into sqlite3 and little else ----------------------------


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; _transact says BEGIN and COMMIT itself.
    db = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        db.execute(pragma)
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    db.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT_FRAMES}")
    return db


def _fetch_all(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Row]:
    return db.execute(sql, params).fetchall()


def _transact(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    """BEGIN IMMEDIATE takes SQLite's one write lock first, so what ``work`` reads is what
    its writes follow."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _as_sqlalchemy(error: sqlite3.Error) -> exc.StatementError:
    """``sqlite3``'s error as SQLAlchemy raises it: ``IntegrityError``, ``OperationalError``..."""
    return exc.DBAPIError.instance(None, None, error, sqlite3.Error)
