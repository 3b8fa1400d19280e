"""Statements compiled once for SQLite, bound and read back as SQLAlchemy would.

The fast path (sqlite.py) runs statements.py's statements on ``sqlite3`` itself: each is
compiled once for the sqlite dialect (``?`` placeholders in ``positiontup`` order);
parameters go through their types' bind processors (the ``UTCDateTime`` column is written
exactly as SQLAlchemy writes it) and columns through their result processors. An
``expanding`` parameter (an ``IN`` list) renders one ``?`` per item, through
``construct_expanded_state``, once per list length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase

from roomchat.store.runner import Params, Row

DIALECT = sqlite.dialect()
Processor = Callable[[Any], Any]

_REQUIRED = object()


class Compiled:
    """One statement for ``sqlite3``: its SQL, how to bind its parameters, how to read its rows."""

    def __init__(self, statement: Executable, column_keys: Sequence[str] | None = None) -> None:
        dml = isinstance(statement, UpdateBase)
        assert isinstance(statement, ClauseElement)
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT, column_keys=column_keys))
        self._compiled = compiled
        self.sql: str = compiled.string
        self._slots: list[tuple[str, Any, Processor | None, bool]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            default = _REQUIRED if bind.required else bind.effective_value
            processor = bind.type.dialect_impl(DIALECT).bind_processor(DIALECT)
            self._slots.append((name, default, processor, bind.expanding))
        self._names = [name for name, _, _, _ in self._slots]
        self._processors = [(i, slot[2]) for i, slot in enumerate(self._slots) if slot[2]]
        self._expanding = [name for name, _, _, expanding in self._slots if expanding]
        self._expanded: dict[tuple[int, ...], str] = {}
        # Only a SELECT's columns are read back here (DML returns none: the fast path learns
        # ids from last_insert_rowid). Asking an INSERT for its exported_columns memoizes
        # an empty list that its .returning() copies keep, and PostgreSQL's many-page
        # INSERT ... RETURNING then lost every page but the last (a process with both
        # stores: the tests).
        columns = () if dml else getattr(statement, "exported_columns", ())
        self._results = [
            (index, processor)
            for index, column in enumerate(columns)
            if (processor := column.type.dialect_impl(DIALECT).result_processor(DIALECT, None))
        ]

    def bind(self, params: Params) -> tuple[str, tuple[Any, ...]]:
        """The SQL and its positional parameters."""
        values: list[Any] = []
        for name, default, processor, expanding in self._slots:
            value = params[name] if default is _REQUIRED or name in params else default
            if expanding:
                values.extend(map(processor, value) if processor else value)
            else:
                values.append(processor(value) if processor else value)
        if not self._expanding:
            return self.sql, tuple(values)
        return self._expanded_sql(params), tuple(values)

    def bind_many(self, rows: Sequence[Params]) -> list[list[Any]]:
        """Positional parameters for each row (every parameter given, none expanding).
        Rows of a batch often share a value (one time for all): it is processed once."""
        assert not self._expanding
        names, processors = self._names, self._processors
        bound: list[list[Any]] = []
        last: dict[int, tuple[Any, Any]] = {}
        for params in rows:
            values = [params[name] for name in names]
            for index, processor in processors:
                value = values[index]
                seen = last.get(index)
                if seen is None or seen[0] is not value:
                    seen = last[index] = (value, processor(value))
                values[index] = seen[1]
            bound.append(values)
        return bound

    def rows(self, raw: Iterable[Row]) -> list[Row]:
        """Rows as SQLAlchemy's column types give them."""
        if not self._results:
            return raw if isinstance(raw, list) else list(raw)
        processed: list[Row] = []
        for row in raw:
            values = list(row)
            for index, processor in self._results:
                values[index] = processor(values[index])
            processed.append(values)
        return processed

    def _expanded_sql(self, params: Params) -> str:
        lengths = tuple(len(params[name]) for name in self._expanding)
        sql = self._expanded.get(lengths)
        if sql is None:
            sql = self._expanded[lengths] = self._compiled.construct_expanded_state(
                dict(params)
            ).statement
        return sql


class Statements:
    """Each statement compiled on first use, then cached (an ``INSERT``: per set of
    columns given)."""

    def __init__(self) -> None:
        self._compiled: dict[Any, Compiled] = {}

    def __call__(self, statement: Executable, params: Params | None = None) -> Compiled:
        key: Any = statement
        if isinstance(statement, Insert) and params is not None:
            key = (statement, frozenset(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            columns = sorted(params) if isinstance(statement, Insert) and params else None
            compiled = self._compiled[key] = Compiled(statement, columns)
        return compiled
