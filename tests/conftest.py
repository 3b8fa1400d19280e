"""Fixtures: the two backends, apps built from their own Settings, an httpx client, live
uvicorn servers (one, or two workers of one deployment), and the services they need."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from roomchat.config import Settings
from roomchat.limits.buckets import Clock
from roomchat.main import create_app
from tests import services

# Other modules still import these from here; new code imports them from tests.helpers.
from tests.helpers import PASSWORD as PASSWORD
from tests.helpers import TEST_SECRET as TEST_SECRET
from tests.helpers import live_token as live_token
from tests.helpers import login as login
from tests.helpers import register as register
from tests.live import LiveServer
from tests.rawclient import RawClient
from tests.rawhttp import RawHTTP

#: The variables that steer the test run itself. Every other ``ROOMCHAT_*`` is the
#: developer's shell speaking (a ``ROOMCHAT_REDIS_URL`` would turn the embedded runs into
#: Redis runs on the default prefix), so none reaches the tests or the servers they start.
TEST_SWITCHES = frozenset(
    {"ROOMCHAT_REQUIRE_SERVICES", "ROOMCHAT_TEST_REDIS_URL", "ROOMCHAT_TEST_POSTGRES_URL"}
)

#: CI sets this so that a test needing a missing service fails instead of skipping.
STRICT = os.environ.get("ROOMCHAT_REQUIRE_SERVICES", "") not in ("", "0", "false")


def pytest_configure(config: pytest.Config) -> None:
    """Before collection (some test modules build an app at import): forget the shell's
    roomchat settings, for this process and every server it starts."""
    for name in [name for name in os.environ if name.startswith("ROOMCHAT_")]:
        if name not in TEST_SWITCHES:
            del os.environ[name]


def require_service(available: bool, reason: str) -> None:
    """Skip with ``reason`` where a service is missing; fail in CI (``STRICT``)."""
    if available:
        return
    if STRICT:
        pytest.fail(f"{reason} (ROOMCHAT_REQUIRE_SERVICES is set, so this is a failure)")
    pytest.skip(reason)


#: Tests register many users from 127.0.0.1; the registration throttle's own tests set it.
TEST_REGISTRATIONS_PER_ADDRESS = 10_000


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}",
        "data_dir": tmp_path / "data",
        "registrations_per_address": TEST_REGISTRATIONS_PER_ADDRESS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@functools.cache
def _reachable(service: str) -> bool:
    probe = services.redis_available if service == "redis" else services.postgres_available
    return probe()


def require_redis() -> None:
    require_service(_reachable("redis"), f"Redis is not reachable at {services.REDIS_URL}")


def require_postgres() -> None:
    require_service(
        _reachable("postgres"), f"PostgreSQL is not reachable at {services.POSTGRES_URL}"
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key and channel prefix of this test's own on the shared Redis, deleted after."""
    require_redis()
    prefix = services.unique_prefix()
    yield prefix
    services.delete_prefix(prefix)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[list[str]]:
    """Migrated databases not in use; each test borrows one and gives it back emptied.

    Creating and migrating a database costs a good part of a second (``postgres_url``
    does it only when none is free); emptying its tables, a hundredth.
    """
    require_postgres()
    free: list[str] = []
    yield free
    for name in free:
        services.drop_database(name)


@pytest.fixture
def postgres_url(postgres_databases: list[str]) -> Iterator[str]:
    """A PostgreSQL database (schema at head, no rows) for this test alone."""
    if postgres_databases:
        name = postgres_databases.pop()
    else:
        name = services.database_name("test")
        services.run_sync(lambda: services.migrate(services.create_database(name)))
    yield services.postgres_url(name)
    if services.empty_database(name):
        postgres_databases.append(name)
    else:  # something still holds it: start afresh next time
        services.drop_database(name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.embedded_only`` tests run once, embedded: they time one process, or
    check what no backend takes part in (token shapes, headers, schema checks)."""
    deselected = [
        item
        for item in items
        if item.get_closest_marker("embedded_only")
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("backend") == "scaled"  # type: ignore[attr-defined]
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture(params=["embedded", "scaled"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the two ways to run: SQLite and memory, or PostgreSQL and Redis.

    Every test that builds its app through ``settings``, ``app``, ``client``, ``live`` or
    ``live_server`` runs on both, unless it is marked ``embedded_only``.
    """
    if request.param == "embedded":
        return {}
    prefix: str = request.getfixturevalue("redis_prefix")
    database_url: str = request.getfixturevalue("postgres_url")
    return {"database_url": database_url, "redis_url": services.REDIS_URL, "redis_prefix": prefix}


@pytest.fixture
def settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    return make_settings(tmp_path, **backend)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
def user_token(client: httpx.AsyncClient) -> Callable[[str], Any]:
    """``await user_token("alice")`` registers alice and returns her access token."""

    async def make(username: str) -> str:
        await register(client, username)
        return await login(client, username)

    return make


@pytest.fixture
def live_server(tmp_path: Path, backend: dict[str, Any]) -> Iterator[Callable[..., LiveServer]]:
    """``live_server(**settings_overrides)`` starts a real uvicorn on this test's backend
    (also: its socket buffer, uvicorn options, app factory, throttles' clock); all stop
    at teardown."""
    servers: list[LiveServer] = []

    def start(
        *,
        send_buffer_bytes: int | None = None,
        uvicorn_options: dict[str, Any] | None = None,
        app_factory: Callable[[Settings], FastAPI] | None = None,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> LiveServer:
        server = LiveServer(
            make_settings(tmp_path, **(backend | overrides)),
            send_buffer_bytes=send_buffer_bytes,
            app_factory=app_factory,
            clock=clock,
            **(uvicorn_options or {}),
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server()


@pytest.fixture
def two_workers(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[LiveServer, LiveServer]]]:
    """``two_workers(**settings_overrides)``: two servers in this process, two workers of
    one deployment: one database (a SQLite file unless ``database_url`` says otherwise)
    and one broker (this test's prefix on the shared Redis unless ``redis_url`` says
    otherwise). Both are started; all stop at teardown."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> tuple[LiveServer, LiveServer]:
        if "redis_url" not in overrides:
            prefix: str = request.getfixturevalue("redis_prefix")
            overrides = {"redis_url": services.REDIS_URL, "redis_prefix": prefix} | overrides
        settings = make_settings(tmp_path, **overrides)
        pair = (LiveServer(settings), LiveServer(settings))
        for server in pair:
            server.start()
            servers.append(server)
        return pair

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def raw_connections_closed() -> Iterator[None]:
    """Close the raw clients a test made, also when it failed before closing them."""
    yield
    for client in list(RawClient.made):
        client.close_now()
    for connection in list(RawHTTP.made):
        connection.close()


@pytest.fixture
def private_postgres() -> Iterator[services.PrivatePostgres]:
    """A PostgreSQL of this test's own, started and at the latest migration; to stop and
    start again. Removed at teardown."""
    require_service(
        services.PrivatePostgres.available(),
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed",
    )
    server = services.PrivatePostgres()
    try:
        server.create()
        server.start()
        services.run_sync(lambda: services.migrate(server.url))
        yield server
    finally:
        server.remove()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[services.PrivateRedis]:
    """A redis-server of this test's own, to stop and start again; killed at teardown."""
    require_service(services.PrivateRedis.binary is not None, "redis-server is not installed")
    server = services.PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
