"""How a store's statements are run: the one seam between the queries and an engine.

``Queries`` (queries.py) is written against these two protocols; ``EngineRunner``
(through_engine.py: PostgreSQL, or SQLite in memory) and ``SQLiteRunner`` (sqlite.py: a
SQLite file, on the store's own thread) implement them. Everything an engine does its own
way (how a transaction becomes a room's one writer, how new ids are learnt, how errors
look) lives in a runner, never in a second copy of a query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import exc
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert

P = ParamSpec("P")
T = TypeVar("T")
Params = Mapping[str, Any]
Row = Sequence[Any]


class Transaction(Protocol):
    """One write transaction, used synchronously by the work that ``Runner.transact`` runs.

    Errors are SQLAlchemy's (``sqlalchemy.exc.IntegrityError``, ``OperationalError``...),
    whichever runner raised them."""

    def take_room(self, room: str, *, wait: float | None = None) -> bool:
        """Make this transaction the room's one writer until it ends (PostgreSQL: an
        advisory lock; SQLite's one write lock is already held, so always True).

        Without ``wait``, False at once when another transaction holds the room; with
        it, wait up to ``wait`` seconds, then raise (PostgreSQL's lock timeout)."""
        ...

    def scalar(self, statement: Executable, params: Params) -> Any:
        """The first column of the first row, or None."""
        ...

    def rowcount(self, statement: Executable, params: Params) -> int: ...

    def rows(self, statement: Executable, params: Params) -> Sequence[Row]:
        """Every row of a read inside the transaction, as ``Runner.fetch`` gives them."""
        ...

    def insert_many(self, statement: Insert, rows: Sequence[Params]) -> list[int]:
        """Insert ``rows`` in order; the new rows' primary keys, in the same order."""
        ...


class CommitOutcomeUnknownError(Exception):
    """The COMMIT was sent but its answer was lost (the connection dropped, or the client
    gave up waiting): the transaction may or may not have committed. Every other error of
    ``Runner.transact`` means nothing of it was committed."""


#: PostgreSQL's errors that another attempt may not meet: the connection's (08), a
#: transaction rolled back (40: serialization, deadlock), resources (53), an operator's
#: or a bound's doing (57: statement timeout, shutdown); a lock not had in time, a
#: session ended for idling in a transaction.
_RETRY_CLASSES = ("08", "40", "53", "57")
_RETRY_STATES = frozenset({"55P03", "25P03"})


def worth_retrying(error: Exception) -> bool:
    """Whether a failed transaction may succeed if tried again as it is: a lock not had
    in time, a statement past its bound, a connection lost or refused. Not a statement
    the database refused (a row whose author was deleted meanwhile, a trigger's error):
    that one fails again, and a batch is better tried one message at a time."""
    if isinstance(error, (OSError, exc.TimeoutError)):  # asyncpg's own, or the pool's
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate in _RETRY_STATES or sqlstate[:2] in _RETRY_CLASSES
    # No SQLSTATE (SQLite, a driver's own): a lost connection, SQLite's "database is locked".
    return error.connection_invalidated or isinstance(
        error, (exc.OperationalError, exc.InterfaceError)
    )


class Runner(Protocol):
    @property
    def dialect(self) -> str:
        """SQLAlchemy's name for the database: ``sqlite`` or ``postgresql``."""
        ...

    async def fetch(self, statement: Executable, params: Params) -> Sequence[Row]:
        """Run one read; its rows, with values as SQLAlchemy's column types give them."""
        ...

    async def transact(
        self, work: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(transaction, *args)`` in one write transaction, committed when it
        returns and rolled back when it raises. On the SQLite fast path it runs on the
        store's thread, so it should do little but run statements.

        Raises ``CommitOutcomeUnknownError`` when the COMMIT's answer was lost; any other
        error means nothing was committed."""
        ...

    async def close(self) -> None: ...
