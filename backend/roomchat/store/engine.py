"""The database engine, for SQLite (aiosqlite) and PostgreSQL (asyncpg), and its schema:
migrations are the one way tables are made (``migrate``, ``prepare_schema``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from roomchat.config import Settings

#: Every SQLite connection: the engine's, the store's thread's (sqlite.py).
#: WAL lets readers (history) run while a writer commits; NORMAL sync is durable across a
#: process crash, which is the failure a chat server must survive.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
#: Seconds a connection waits for another's write lock before it gives up ("locked").
SQLITE_BUSY_TIMEOUT = 30.0


#: Seconds past the statement bound after which the client gives up on an answer itself:
#: PostgreSQL ends a long statement first; this is for a server that no longer answers.
COMMAND_TIMEOUT_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class DatabaseBounds:
    """PostgreSQL's bounds on each of an engine's sessions, in seconds; ``None``: none.

    ``lock``: ``lock_timeout``, the longest wait for any lock (a row's, a room's).
    ``statement``: ``statement_timeout``; the client also stops waiting for any answer
    ``COMMAND_TIMEOUT_MARGIN`` later (asyncpg's ``command_timeout``: a server gone silent).
    ``idle_in_transaction``: ``idle_in_transaction_session_timeout``: PostgreSQL ends the
    session of a client that stopped mid-transaction (frozen, partitioned), which rolls
    its transaction back and frees its locks.
    """

    lock: float | None = None
    statement: float | None = None
    idle_in_transaction: float | None = None

    @classmethod
    def of(cls, settings: Settings, *, statement: bool = True) -> DatabaseBounds:
        """The server's bounds; a migration (``statement=False``) may take long."""
        return cls(
            lock=settings.database_lock_timeout_seconds,
            statement=settings.database_statement_timeout_seconds if statement else None,
            idle_in_transaction=settings.database_idle_in_transaction_seconds,
        )

    def connect_args(self) -> dict[str, Any]:
        """asyncpg's ``connect`` arguments: each bound in ``server_settings``."""
        server_settings = {
            name: f"{max(1, round(seconds * 1000))}ms"
            for name, seconds in (
                ("lock_timeout", self.lock),
                ("statement_timeout", self.statement),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction),
            )
            if seconds is not None
        }
        args: dict[str, Any] = {"server_settings": server_settings} if server_settings else {}
        if self.statement is not None:
            args["command_timeout"] = self.statement + COMMAND_TIMEOUT_MARGIN
        return args


def create_engine(database_url: str, bounds: DatabaseBounds | None = None) -> AsyncEngine:
    """``hide_parameters``: a database error quotes its statement but never its values (a
    password hash, a message's text), so logging one (a 503, a failed store) leaks none.

    ``bounds`` apply on PostgreSQL (SQLite has one write lock and its busy timeout)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        connect_args = bounds.connect_args() if bounds is not None else {}
        engine = create_async_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
        )
        event.listen(engine.sync_engine, "handle_error", _unavailable_is_operational)
        return engine
    if url.database and url.database != ":memory:":
        from pathlib import Path

        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine


#: PostgreSQL's SQLSTATEs of a server that is going away or not back yet: the operator's
#: or a crash's shutdown, and "the database system is not yet accepting connections"
#: (recovering after a restart). Connection exceptions (class 08) are such errors too.
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})


def _unavailable_is_operational(context: ExceptionContext) -> BaseException | None:
    """asyncpg's refusal by a server still recovering arrives as SQLAlchemy's generic
    ``DBAPIError``, which no route takes for an outage (a handshake answered 500): make it
    the ``OperationalError`` it is, so it is answered 503 as every other outage is."""
    error = context.sqlalchemy_exception
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if error is None or isinstance(error, OperationalError) or not isinstance(sqlstate, str):
        return None
    if sqlstate not in UNAVAILABLE_STATES and not sqlstate.startswith("08"):
        return None
    return OperationalError(
        context.statement,
        context.parameters,
        context.original_exception,
        hide_parameters=True,
        connection_invalidated=error.connection_invalidated,
    )


class SchemaOutOfDateError(RuntimeError):
    """The database is not at the latest migration; ``make migrate`` brings it there."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "roomchat.store:migrations")
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Apply every migration not applied yet (``make migrate``; SQLite at startup)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def prepare_schema(engine: AsyncEngine) -> None:
    """At startup: SQLite is migrated in place, so the embedded default needs no step;
    a shared server (PostgreSQL) is migrated once by the operator, never by N workers at
    once, and a worker refuses to start on a schema that is not at head."""
    if engine.dialect.name == "sqlite":
        await migrate(engine)
        return
    async with engine.connect() as connection:
        current, head = await connection.run_sync(_revisions)
    if current != head:
        raise SchemaOutOfDateError(
            f"the database schema is at {sorted(current) or 'nothing'}, not {sorted(head)}: "
            "run `make migrate` (or `roomchat migrate`) with the same ROOMCHAT_DATABASE_URL"
        )


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    untracked = MigrationContext.configure(connection).get_current_revision() is None
    if untracked and inspect(connection).has_table("users"):
        # Made by create_all before migrations existed: it is the initial schema.
        command.stamp(config, "0001_initial")
    command.upgrade(config, "head")


def _revisions(connection: Connection) -> tuple[set[str], set[str]]:
    current = set(MigrationContext.configure(connection).get_current_heads())
    head = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    return current, head
