"""The store through SQLAlchemy's ``AsyncEngine``: PostgreSQL, or SQLite in memory or by URI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Concatenate

import asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert

from roomchat.store import statements
from roomchat.store.queries import Queries
from roomchat.store.runner import CommitOutcomeUnknownError, P, Params, Row, T


class EngineStore(Queries):
    """``Queries`` through the engine; whoever made the engine disposes of it."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(EngineRunner(engine))


class EngineRunner:
    """Each call on a connection from the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @property
    def dialect(self) -> str:
        return self._dialect

    async def fetch(self, statement: Executable, params: Params) -> Sequence[Row]:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, params)).all()

    async def transact(
        self, work: Callable[Concatenate[Any, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        async with self._engine.connect() as connection:
            if self._dialect == "sqlite":
                # Take SQLite's one write lock first (as the fast path does), not at the
                # first write: a read before it could otherwise find its snapshot stale.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")

            def run(sync: Connection) -> T:
                return work(EngineTransaction(sync), *args, **kwargs)

            result = await connection.run_sync(run)
            try:
                await connection.commit()
            except Exception as error:
                if not nothing_committed(error):
                    raise CommitOutcomeUnknownError(
                        f"the COMMIT's answer was lost: {error!r}"
                    ) from error
                raise
            return result

    async def close(self) -> None:
        """The engine is disposed of by whoever made it."""


class EngineTransaction:
    """A ``Transaction`` on a synchronous SQLAlchemy connection (inside ``run_sync``)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._postgresql = connection.dialect.name == "postgresql"

    def take_room(self, room: str, *, wait: float | None = None) -> bool:
        if not self._postgresql:
            return True  # BEGIN IMMEDIATE took SQLite's one write lock
        key = {"key": statements.room_lock_key(room)}
        if wait is None:
            return bool(self._connection.execute(statements.TRY_LOCK_ROOM, key).scalar())
        timeout = {"timeout": f"{max(1, round(wait * 1000))}ms"}
        self._connection.execute(statements.LOCK_TIMEOUT_HERE, timeout)
        self._connection.execute(statements.LOCK_ROOM, key)
        return True

    def scalar(self, statement: Executable, params: Params) -> Any:
        return self._connection.execute(statement, params).scalar()

    def rowcount(self, statement: Executable, params: Params) -> int:
        return int(getattr(self._connection.execute(statement, params), "rowcount", 0))

    def rows(self, statement: Executable, params: Params) -> Sequence[Row]:
        return self._connection.execute(statement, params).all()

    def insert_many(self, statement: Insert, rows: Sequence[Params]) -> list[int]:
        if not rows:  # an empty parameter list would insert one row of defaults
            return []
        if self._postgresql:
            returning = statement.returning(
                *statement.table.primary_key, sort_by_parameter_order=True
            )
            return list(self._connection.execute(returning, list(rows)).scalars())
        # SQLite, under its one write lock: new rows take consecutive rowids.
        self._connection.execute(statement, list(rows))
        last = int(self._connection.execute(statements.LAST_ROWID).scalar_one())
        return list(range(last - len(rows) + 1, last + 1))


#: What asyncpg says when it refuses to send a statement at all: the connection is closed
#: already, or its protocol failed already (PostgreSQL sent it an error unasked: the FATAL
#: that ends a session idle in a transaction, say). Anything else may have been sent.
_NOT_SENT = ("connection is closed", "not connected", "cannot switch to state")


def nothing_committed(error: Exception) -> bool:
    """Whether a failed COMMIT certainly committed nothing.

    Yes when PostgreSQL answered it with an ERROR (a deferred constraint, a serialization
    failure: the transaction is rolled back), or when asyncpg never sent it (``_NOT_SENT``),
    as after PostgreSQL ended a frozen worker's session. No when the session ended while
    the COMMIT was on its way or its answer awaited: the connection dropped (asyncpg's
    "closed in the middle of operation", SQLSTATE 08003), a FATAL (a backend terminated
    just after committing says so too), the client's own timeout. Then it is unknown.
    """
    driver_error = getattr(error, "orig", None) or error
    driver_error = driver_error.__cause__ or driver_error  # SQLAlchemy's adapter wraps it
    if isinstance(driver_error, asyncpg.PostgresError):
        severity = getattr(driver_error, "severity_en", None) or driver_error.severity
        return severity == "ERROR" and not str(driver_error.sqlstate).startswith("08")
    if isinstance(driver_error, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return any(phrase in str(driver_error) for phrase in _NOT_SENT)
    return False
