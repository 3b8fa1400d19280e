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

    def take_room(self, room: str) -> None:
        """Make this transaction the room's one writer until it ends (PostgreSQL: an
        advisory lock; SQLite's one write lock is already held)."""
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
        store's thread, so it should do little but run statements."""
        ...

    async def close(self) -> None: ...
