"""Alembic migrations: they build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SAWarning

from roomchat.cli import main as cli
from roomchat.store.engine import (
    SchemaOutOfDateError,
    create_engine,
    migrate,
    prepare_schema,
)
from roomchat.store.schema import Base
from tests import services
from tests.conftest import require_postgres


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
        await migrate(engine)
        async with engine.begin() as connection:  # tables with no version: as create_all made
            await connection.execute(text("DROP TABLE alembic_version"))
        await prepare_schema(engine)  # stamps it, then upgrades: no "table exists"
        async with engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == "0001_initial"
    finally:
        await engine.dispose()


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
