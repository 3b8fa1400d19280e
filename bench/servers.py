"""Start the servers under test: pinned to one core, on a loopback port, in a fresh tempdir.

roomchat runs exactly as deployed (``roomchat serve``), with a fresh SQLite database,
a fixed secret key and settings that make the benchmark's load legitimate
(``ROOMCHAT_ENV``); the baseline runs ``bench.baseline_app`` under the same uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

#: The fixed key the benchmark signs its tokens with (API.md: a trusted backend may mint).
SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdef"  # noqa: S105
PASSWORD = "bench password"  # noqa: S105 (every seeded user's; nobody logs in with it)

#: Settings for roomchat under the benchmark, and why each one is what it is.
ROOMCHAT_ENV: dict[str, tuple[str, str]] = {
    "ROOMCHAT_SECRET_KEY": (SECRET_KEY, "fixed, so the harness can mint tokens (API.md)"),
    "ROOMCHAT_MESSAGES_PER_SECOND": ("1000000", "per-socket limit raised: senders go fast"),
    "ROOMCHAT_MESSAGE_BURST": ("1000000", "per-socket burst raised likewise"),
    "ROOMCHAT_MAX_MESSAGE_CHARS": ("16384", "the slow scenario sends 8 KiB texts"),
    "ROOMCHAT_ACCESS_TOKEN_MINUTES": ("120", "tokens outlive the run"),
    "ROOMCHAT_LOGIN_FAILURES_PER_ADDRESS": ("1000000", "not exercised (no logins)"),
    "ROOMCHAT_LOG_LEVEL": ("warning", "no access log line per socket (baseline: same)"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(cpu: int | None, command: list[str]) -> list[str]:
    """``taskset -c CPU command`` (taskset execs, so the pid is the command's own)."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


@dataclass
class Server:
    """One server process under test."""

    target: str  # "roomchat", "baseline" or "ceiling"
    cpu: int | None
    baseline_ws: str = "websockets-sansio"
    seed_users: list[str] = field(default_factory=list)
    #: roomchat's settings and why; None: ``ROOMCHAT_ENV`` (``bench.attack`` passes its own)
    env: dict[str, tuple[str, str]] | None = None
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="roomchat-bench-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.workdir / "bench.db"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        python = sys.executable
        host_port = ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.target == "roomchat":
            if self.seed_users:
                asyncio.run(seed_users(self.database, self.seed_users))
            command = [python, "-m", "roomchat", "serve", *host_port]
            inherited = dict(os.environ)
            if self.env is not None:  # exactly these settings: none from the caller's shell
                inherited = {k: v for k, v in inherited.items() if not k.startswith("ROOMCHAT_")}
            settings = ROOMCHAT_ENV if self.env is None else self.env
            env = {**inherited, **{name: value for name, (value, _) in settings.items()}}
            env["ROOMCHAT_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.database}"
            env["ROOMCHAT_DATA_DIR"] = str(self.workdir / "data")
        elif self.target == "baseline":
            command = [python, "-m", "bench.baseline_app", *host_port, "--ws", self.baseline_ws]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
        else:
            command = [python, "-m", "bench.ceiling_app", *host_port]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = (self.workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            pinned(self.cpu, command),
            env=env,
            cwd=self.workdir,  # no .env from the worktree is read
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_fd_limit,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.target} exited early:\n{self.output()}")
            try:
                if self.target == "ceiling":  # no HTTP routes: a TCP connect will do
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    self._check_listener()
                    return
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        self._check_listener()
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.target} did not start:\n{self.stop()}")

    def _check_listener(self) -> None:
        """The app must run in the pid we measure (uvicorn with one worker: no supervisor)."""
        ports = {c.laddr.port for c in psutil.Process(self.pid).net_connections("tcp")}
        if self.port not in ports:
            raise RuntimeError(f"{self.target}: pid {self.pid} does not hold port {self.port}")

    def output(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> str:
        """Stop as Ctrl-C does; return the log; remove the tempdir."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        output = self.output()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return output

    def count_messages(self) -> int | None:
        """Rows in roomchat's messages table (call before ``stop``)."""
        if self.target != "roomchat":
            return None
        import sqlite3

        with sqlite3.connect(self.database) as db:
            (count,) = db.execute("SELECT count(*) FROM messages").fetchone()
        return int(count)


async def seed_users(database: Path, usernames: list[str]) -> None:
    """Create users straight in a fresh database: one argon2 hash shared by all.

    Registering thousands of users over HTTP would cost one argon2 hash (~20 ms) each;
    the benchmark measures chat, not registration.
    """
    from sqlalchemy import insert

    from roomchat.accounts.security import PasswordHasher
    from roomchat.store.engine import create_engine, migrate
    from roomchat.store.schema import User

    hasher = PasswordHasher(concurrency=1)
    try:
        password_hash = await hasher.hash(PASSWORD)
    finally:
        hasher.close()
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await migrate(engine)
        async with engine.begin() as connection:
            rows = [{"username": name, "password_hash": password_hash} for name in usernames]
            await connection.execute(insert(User), rows)
    finally:
        await engine.dispose()


def current_commit() -> str:
    """The checkout's short commit id, for a run's record ("" outside git)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
