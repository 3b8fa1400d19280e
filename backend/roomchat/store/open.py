"""The store, chosen once at startup: ``open_store``. Everyone reads and writes through it.

On a SQLite file it is ``SQLiteStore`` (sqlite.py: one thread, the ``sqlite3`` module, one
hop per call); anywhere else (PostgreSQL, or an in-memory SQLite that no second connection
could see) ``EngineStore`` (through_engine.py). Both run the statements of statements.py.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat.store.messages import MessageStore
from roomchat.store.sqlite import SQLiteStore
from roomchat.store.through_engine import EngineStore
from roomchat.store.users import UserStore

log = logging.getLogger(__name__)


class Store(UserStore, MessageStore, Protocol):
    """Every concern's store in one (later: rooms and sessions too)."""


async def open_store(engine: AsyncEngine) -> Store:
    """``SQLiteStore`` on the engine's own file when it is a SQLite file, else
    ``EngineStore``. The caller closes the store, then disposes of the engine."""
    if engine.dialect.name != "sqlite":
        return EngineStore(engine)
    args: Any
    args, options = engine.dialect.create_connect_args(engine.url)
    path = args[0]
    if path == ":memory:" or options.get("uri"):
        # A second connection would not see an in-memory database (nor, maybe, a URI's).
        log.info("SQLite at %s: the store goes through SQLAlchemy's engine", path)
        return EngineStore(engine)
    return await SQLiteStore.open(path)
