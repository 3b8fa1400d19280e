"""Alembic migrations: they build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat import store
from roomchat.cli import main as cli
from roomchat.store.engine import (
    SchemaOutOfDateError,
    alembic_config,
    create_engine,
    migrate,
    prepare_schema,
)
from roomchat.store.schema import Base
from roomchat.store.through_engine import EngineStore
from tests import services
from tests.conftest import require_postgres

HEAD = "0002_client_id"


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    require_postgres()
    name = services.database_name("empty")
    yield services.create_database(name)
    services.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("empty_postgres")
    return url


def differences(connection: Connection) -> list[Any]:
    with warnings.catch_warnings():
        # SQLite cannot reflect the lower(username) index; it is tested by behaviour below.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified", UserWarning)
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def indexes(connection: Connection) -> dict[str, dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        return {index["name"]: index for index in inspect(connection).get_indexes("messages")}


async def test_the_migrations_build_the_models_schema(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            found = await connection.run_sync(indexes)
        assert found["ix_messages_room_id"]["column_names"] == ["room", "id"]
        insert = text(
            "INSERT INTO users (username, password_hash, created_at) VALUES (:n, '-', :t)"
        )
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(insert, {"n": "Alice", "t": now})
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(insert, {"n": "aLiCe", "t": now})
        await prepare_schema(engine)  # at head: a worker starts
    finally:
        await engine.dispose()


async def test_a_worker_refuses_an_unmigrated_postgres(empty_postgres: str) -> None:
    engine = create_engine(empty_postgres)
    try:
        with pytest.raises(SchemaOutOfDateError, match="make migrate"):
            await prepare_schema(engine)
    finally:
        await engine.dispose()


async def test_an_embedded_database_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await migrate_to(engine, "0001_initial")
        async with engine.begin() as connection:  # tables with no version: as create_all made
            await connection.execute(text("DROP TABLE alembic_version"))
        await prepare_schema(engine)  # stamps it, then upgrades: no "table exists"
        async with engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == HEAD
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


V1_USERS = [("Alice", "hash-a"), ("bob", "hash-b"), ("gone", "hash-c")]
V1_MESSAGES = [  # room, user_id, author, text: one by a deleted account (no user_id)
    ("lobby", 1, "Alice", "hello ✓"),
    ("attic", 2, "bob", "up here"),
    ("lobby", None, "gone", "before I left"),
    ("lobby", 2, "bob", "line one\nline two"),
]


async def test_a_version_1_database_upgrades_with_its_data(empty_database: str) -> None:
    """Version 1's schema and rows, upgraded to head: every row reads back unchanged, and
    a keyed post works on it (a repeat stores nothing), on SQLite and PostgreSQL."""
    engine = create_engine(empty_database)
    created = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    try:
        await migrate_to(engine, "0001_initial")
        async with engine.begin() as connection:  # ids as the database hands them out
            for name, password_hash in V1_USERS:
                await connection.execute(
                    text(
                        "INSERT INTO users (username, password_hash, created_at) "
                        "VALUES (:n, :h, :t)"
                    ),
                    {"n": name, "h": password_hash, "t": created},
                )
            for room, user_id, author, body in V1_MESSAGES:
                await connection.execute(
                    text(
                        "INSERT INTO messages (room, user_id, author, text, created_at) "
                        "VALUES (:room, :user_id, :author, :text, :t)"
                    ),
                    {"room": room, "user_id": user_id, "author": author}
                    | {"text": body, "t": created},
                )
        before = await v1_rows(engine)
        assert [row[0] for row in before[1]] == [1, 2, 3, 4]
        await migrate(engine)
        assert await v1_rows(engine) == before
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            keys = await connection.execute(
                text("SELECT count(*) FROM messages WHERE client_id IS NULL")
            )
            assert keys.scalar_one() == len(V1_MESSAGES)

        posted = EngineStore(engine)
        drafts = {"lobby": [store.Draft(1, "Alice", "keyed", "key-1")]}
        first = (await posted.add_messages_to_rooms(drafts=drafts))["lobby"]
        again = (await posted.add_messages_to_rooms(drafts=drafts))["lobby"]
        assert first.previous_id == 4
        assert again.messages == []
        assert again.answers()[0].id == first.messages[0].id > 4
        lobby = await posted.list_messages(room="lobby", limit=10)
        assert [(m.id, m.text, m.client_id) for m in lobby][-2:] == [
            (4, "line one\nline two", None),
            (first.messages[0].id, "keyed", "key-1"),
        ]

        await migrate_to(engine, "0001_initial", down=True)  # and back: the rows stay
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("messages")]
            )
        assert "client_id" not in columns
        assert (await v1_rows(engine))[1][:-1] == before[1]
        await migrate(engine)
    finally:
        await engine.dispose()


async def v1_rows(engine: AsyncEngine) -> tuple[list[Any], list[Any]]:
    """Every user and message, version 1's columns, as the database hands them back."""
    async with engine.connect() as connection:
        users = await connection.execute(text("SELECT * FROM users ORDER BY id"))
        messages = await connection.execute(
            text("SELECT id, room, user_id, author, text, created_at FROM messages ORDER BY id")
        )
        return [tuple(row) for row in users], [tuple(row) for row in messages]


async def migrate_to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database to ``revision``, as ``roomchat migrate`` would."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


def test_roomchat_migrate_applies_them_to_the_configured_database(
    empty_postgres: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMCHAT_DATABASE_URL", empty_postgres)
    cli(["migrate"])
    assert "latest migration" in capsys.readouterr().out

    async def check() -> None:
        engine = create_engine(empty_postgres)
        try:
            await prepare_schema(engine)
        finally:
            await engine.dispose()

    services.run_sync(check)
