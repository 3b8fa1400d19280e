"""The database engine, for SQLite (aiosqlite) and PostgreSQL (asyncpg), and its schema:
migrations are the one way tables are made (``migrate``, ``prepare_schema``)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


def create_engine(database_url: str) -> AsyncEngine:
    """``hide_parameters``: a database error quotes its statement but never its values (a
    password hash, a message's text), so logging one (a 503, a failed store) leaks none."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
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
