"""The scale-out deployment under test: a private PostgreSQL and Redis, and three servers.

Nothing here touches the machine's shared PostgreSQL or Redis: both services are clusters
of the run's own on free ports (``tests.services``), stopped and frozen as the scenarios
say. The servers are ``roomchat serve`` exactly as deployed, two with one worker (their
pid is the worker: it can be frozen) and one with ``--workers 2`` under uvicorn's
supervisor (which starts a new worker when one dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
from tests.helpers import free_port
from tests.services import PrivatePostgres, PrivateRedis

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
DATABASE = "chaos"

#: The fixed key of the run (API.md: every worker shares it).
SECRET_KEY = "chaos-secret-key-not-for-production-0123456789abcdef"  # noqa: S105
PASSWORD = "chaos password"  # noqa: S105 (every user of the run's)

#: roomchat's settings in every scenario, and why; everything else is the default.
CHAOS_ENV: dict[str, tuple[str, str]] = {
    "ROOMCHAT_SECRET_KEY": (SECRET_KEY, "fixed: every server of the deployment shares it"),
    "ROOMCHAT_MESSAGES_PER_SECOND": ("5", "the default; senders go at 2.5/s, under it"),
    "ROOMCHAT_MESSAGE_BURST": ("20", "the default"),
    "ROOMCHAT_PRESENCE_TTL_SECONDS": ("5", "a killed worker's members go within ~7 s, not 20"),
    "ROOMCHAT_REGISTRATIONS_PER_ADDRESS": ("1000", "the harness registers its users at once"),
    "ROOMCHAT_LOG_LEVEL": ("warning", "no access-log line per message"),
}


def server_env(database_url: str, redis_url: str, prefix: str, workdir: Path) -> dict[str, str]:
    """The environment of one server: none of the caller's ``ROOMCHAT_*`` settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCHAT_")}
    return {
        **inherited,
        **{name: value for name, (value, _) in CHAOS_ENV.items()},
        "ROOMCHAT_DATABASE_URL": database_url,
        "ROOMCHAT_REDIS_URL": redis_url,
        "ROOMCHAT_REDIS_PREFIX": prefix,
        "ROOMCHAT_DATA_DIR": str(workdir / "data"),
    }


@dataclass
class Server:
    """``roomchat serve`` on a port of its own, which it keeps across restarts."""

    name: str
    workers: int
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.name}.log"

    def start(self) -> None:
        command = [sys.executable, "-m", "roomchat", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> set[int]:
        """Poll ``/readyz`` until every worker has answered 200; return their pids."""
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        fresh = httpx.Limits(max_keepalive_connections=0)  # each poll may reach another worker
        async with httpx.AsyncClient(base_url=self.url, timeout=2, limits=fresh) as client:
            while len(answered) < self.workers:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"server {self.name} exited:\n{self.output()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {self.name} not ready in {timeout:.0f} s")
                try:
                    answer = await client.get("/readyz")
                    if answer.status_code == 200:
                        answered.add(int(answer.headers["x-roomchat-worker"]))
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)  # start-up polling, with a deadline
        return answered

    def worker_pids(self) -> list[int]:
        """The processes that serve: the server's own, or its supervisor's workers."""
        if self.process is None or self.process.poll() is not None:
            return []
        if self.workers == 1:
            return [self.process.pid]
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.Error:
            return []
        pids = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if any("spawn_main" in part for part in child.cmdline()):
                    pids.append(child.pid)
        return pids

    def worker_of(self, local_port: int) -> int | None:
        """The worker holding the connection a client opened from ``local_port``."""
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                for connection in psutil.Process(pid).net_connections("tcp"):
                    if connection.raddr and connection.raddr.port == local_port:
                        return pid
        return None

    def terminate(self) -> None:
        """SIGTERM, as a deploy stops a server; wait for it (killed past STOP_TIMEOUT)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self.process = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def resume_all(pids: list[int]) -> None:
    """SIGCONT whatever a scenario froze, so nothing stays stopped if the run fails."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


class Deployment:
    """The run's own PostgreSQL (migrated once) and Redis; servers per scenario."""

    def __init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="roomchat-chaos-"))
        self.postgres = PrivatePostgres()
        self.redis = PrivateRedis(self.scratch)
        self.servers: list[Server] = []
        self.frozen: list[int] = []  # pids a scenario stopped and has not resumed yet
        self.registered = False  # the run's users, in the database

    @staticmethod
    def check() -> str | None:
        """Why the run cannot be made here; None when it can."""
        if PrivateRedis.binary is None:
            return "redis-server is not installed (apt-get install redis-server)"
        if not PrivatePostgres.available():
            return "PostgreSQL's initdb is not installed (apt-get install postgresql)"
        return None

    @property
    def database_url(self) -> str:
        return self.postgres.url.rsplit("/", 1)[0] + "/" + DATABASE

    def start(self) -> None:
        self.postgres.create()
        self.postgres.start()
        asyncio.run(self._create_database())
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCHAT_")}
        env["ROOMCHAT_DATABASE_URL"] = self.database_url
        subprocess.run(
            [sys.executable, "-m", "roomchat", "migrate"],
            env=env,
            cwd=self.scratch,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.redis.start()

    async def _create_database(self) -> None:
        dsn = self.postgres.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await connection.close()

    async def stored(self, room: str) -> list[tuple[int, str]]:
        """Every message of ``room`` as the database holds it: (id, text)."""
        dsn = self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT id, text FROM messages WHERE room = $1 ORDER BY id", room
            )
        finally:
            await connection.close()
        return [(int(row["id"]), str(row["text"])) for row in rows]

    def redis_pid(self) -> int:
        """The private redis-server's pid (the one listening on its port)."""
        for process in psutil.process_iter(["name"]):
            if process.info["name"] != "redis-server":
                continue
            with contextlib.suppress(psutil.Error):
                if any(c.laddr.port == self.redis.port for c in process.net_connections("tcp")):
                    return int(process.pid)
        raise RuntimeError(f"no redis-server on port {self.redis.port}")

    async def start_servers(self, prefix: str) -> list[Server]:
        """Servers a, b (one worker each) and c (two workers) on a fresh Redis prefix."""
        workdir = self.scratch / prefix
        workdir.mkdir()
        env = server_env(self.database_url, self.redis.url, prefix, workdir)
        self.servers = [
            Server("a", 1, env, workdir),
            Server("b", 1, env, workdir),
            Server("c", 2, env, workdir),
        ]
        for server in self.servers:
            server.start()
        for server in self.servers:
            await server.wait_ready()
        return self.servers

    def stop_servers(self) -> None:
        resume_all(self.frozen)
        for server in self.servers:
            server.terminate()

    def close(self) -> None:
        resume_all(self.frozen)
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.terminate()
        self.redis.stop()
        self.postgres.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)
