"""The real Redis and PostgreSQL the scale-out tests run on, each test in its own corner.

Redis: every test gets its own key prefix (channels carry it too: pub/sub ignores database
numbers), and its keys are deleted afterwards. PostgreSQL: every test gets a database of
its own, at the latest migration and empty; afterwards it is emptied and lent to the next
test, and all are dropped at the end of the run. A private
``redis-server`` on a free port can be stopped and started again without disturbing the
machine's shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg
import redis

from tests.helpers import free_port

REDIS_URL = os.environ.get("ROOMCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "ROOMCHAT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
START_TIMEOUT = 10.0

T = TypeVar("T")


def run_sync(function: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from synchronous code, on a loop of its own in another thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(function())).result()  # type: ignore[arg-type]


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


def unique_prefix() -> str:
    return f"roomchat-test-{uuid4().hex[:12]}"


# -- PostgreSQL --------------------------------------------------------------------------


def _dsn(url: str, database: str | None = None) -> str:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if database is not None:
        dsn = dsn.rsplit("/", 1)[0] + "/" + database
    return dsn


def postgres_available(url: str = POSTGRES_URL) -> bool:
    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(_dsn(url), timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await connection.close()
        return True

    return run_sync(probe)


def postgres_url(database: str, url: str = POSTGRES_URL) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def _admin(statement: str, url: str = POSTGRES_URL) -> None:
    async def execute() -> None:
        connection = await asyncpg.connect(_dsn(url), timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    run_sync(execute)


def create_database(name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template``); return its SQLAlchemy URL."""
    _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return postgres_url(name)


def empty_database(name: str) -> bool:
    """Delete every row (ids start at 1 again); False when it could not be done at once."""

    async def truncate() -> bool:
        connection = await asyncpg.connect(_dsn(POSTGRES_URL, name), timeout=5)
        try:
            await connection.execute("SET lock_timeout = '2s'")
            await connection.execute("TRUNCATE users, messages RESTART IDENTITY CASCADE")
        except asyncpg.PostgresError:
            return False
        finally:
            await connection.close()
        return True

    return run_sync(truncate)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(kind: str) -> str:
    return f"roomchat_{kind}_{os.getpid()}_{uuid4().hex[:8]}"


# -- a private redis-server --------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a loopback port of its own, without persistence."""

    binary = shutil.which("redis-server")

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary is not None
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not redis_available(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it, as a crash or a restart would: clients see their connections drop."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(START_TIMEOUT)
        self._process = None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own on a free port, to stop and start again
    (as an outage would) without touching the machine's shared one.

    ``initdb`` refuses to run as root, so as root the cluster belongs to ``postgres``
    (``runuser``); its directory is one ``postgres`` may write to.
    """

    bin_dir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="roomchat-pg-"))
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]

    @classmethod
    def available(cls) -> bool:
        if cls.bin_dir is None or not (cls.bin_dir / "initdb").exists():
            return False
        return os.geteuid() != 0 or shutil.which("runuser") is not None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        assert self.bin_dir is not None
        command = [*self._as_owner, str(self.bin_dir / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        data = str(self.directory / "data")
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off"  # written to the OS at commit: survives an immediate stop
        )
        # -l: the server's output goes to a file, not to the pipe ``_run`` reads to its end.
        data, log = str(self.directory / "data"), str(self.directory / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop it at once (``immediate``): clients see their connections drop."""
        data = str(self.directory / "data")
        self._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):  # it was not running
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def settings_for(redis_url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"redis_url": redis_url, "redis_prefix": prefix, **extra}


async def migrate(url: str) -> None:
    """Bring a database's schema to head."""
    from roomchat.store.engine import create_engine
    from roomchat.store.engine import migrate as apply_migrations

    engine = create_engine(url)
    try:
        await apply_migrations(engine)
    finally:
        await engine.dispose()
