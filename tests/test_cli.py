"""The ``roomchat`` command line: every command, in-process or as a real subprocess."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from roomchat.cli import main
from roomchat.client import Client, Message
from tests import services
from tests.conftest import PASSWORD, TEST_SECRET, live_token, require_service
from tests.helpers import free_port
from tests.live import LiveServer

TIMEOUT = 15.0
ENV_NAMES = ("URL", "USERNAME", "PASSWORD", "TOKEN", "DATABASE_URL", "SECRET_KEY", "LOG_FORMAT")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ROOMCHAT_* from the developer's shell, no .env from the working directory."""
    for name in ENV_NAMES:
        monkeypatch.delenv(f"ROOMCHAT_{name}", raising=False)
    monkeypatch.chdir(tmp_path)


class Terminal(io.StringIO):
    """Standard input that says it is a terminal (``getpass`` is replaced beside it)."""

    def isatty(self) -> bool:
        return True


def login_works(server: LiveServer, username: str, password: str) -> bool:
    form = {"username": username, "password": password}
    return httpx.post(f"{server.http_url}/api/auth/token", data=form).status_code == 200


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve"],
        ["user"],
        ["user", "add"],
        ["user", "list"],
        ["user", "passwd"],
        ["user", "delete"],
        ["send"],
        ["chat"],
    ],
    ids=lambda argv: " ".join(argv) or "roomchat",
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    assert "usage: roomchat" in capsys.readouterr().out


def test_user_add_with_a_prompted_password_then_log_in(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server()
    monkeypatch.setenv("ROOMCHAT_DATABASE_URL", server.settings.database_url)
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["user", "add", "carol"]) == 0
    assert login_works(server, "carol", PASSWORD)

    answers = iter([PASSWORD, "something else"])
    assert main(["user", "add", "dave"]) == 1
    assert not login_works(server, "dave", PASSWORD)


def test_user_add_from_stdin_and_its_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMCHAT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "erin", "--password-stdin"]) == 0
    assert "created user erin" in capsys.readouterr().out
    for name, password, complaint in [
        ("Erin", PASSWORD, "taken"),
        ("x", PASSWORD, "username"),
        ("frank", "short", "password"),
    ]:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert main(["user", "add", name, "--password-stdin"]) == 1
        error = capsys.readouterr().err
        assert complaint in error
        assert password not in error or password == PASSWORD


def test_send_with_a_password_or_a_token(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = asyncio.run(live_token(live, "alice"))
    monkeypatch.setenv("ROOMCHAT_PASSWORD", PASSWORD)
    assert (
        main(["send", "lobby", "by password", "--url", live.http_url, "--username", "alice"]) == 0
    )
    assert "sent message 1 to lobby" in capsys.readouterr().out
    monkeypatch.delenv("ROOMCHAT_PASSWORD")
    monkeypatch.setenv("ROOMCHAT_URL", live.http_url)
    monkeypatch.setenv("ROOMCHAT_TOKEN", token)
    assert main(["send", "lobby", "by token"]) == 0
    response = httpx.get(
        f"{live.http_url}/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {token}"}
    )
    assert [m["text"] for m in response.json()["messages"]] == ["by password", "by token"]

    assert main(["send", "lobby", "x", "--token", "forged"]) == 1
    assert "401" in capsys.readouterr().err
    monkeypatch.delenv("ROOMCHAT_TOKEN")
    assert main(["send", "lobby", "x"]) == 1
    assert "--username" in capsys.readouterr().err


def run_roomchat(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "roomchat", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | env,
    )


class Lines:
    """Read a subprocess's output lines with a deadline: a thread of its own reads them,
    so a silent process fails the wait at the deadline instead of blocking it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output

    def until(self, predicate: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line.rstrip("\n"))
            if predicate(line):
                return line
        raise AssertionError(f"not seen; output so far: {self.seen}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_chat_in_a_terminal_driven_through_stdin_and_stdout(
    live: LiveServer, processes: list[subprocess.Popen[str]]
) -> None:
    asyncio.run(live_token(live, "alice"))
    bob_token = asyncio.run(live_token(live, "bob"))
    env = {"ROOMCHAT_URL": live.http_url, "ROOMCHAT_PASSWORD": PASSWORD}
    process = run_roomchat("chat", "lobby", "--username", "alice", env=env)
    processes.append(process)
    assert process.stdin is not None
    lines = Lines(process)
    assert "online: alice" in lines.until(lambda line: "you are in lobby as alice" in line)

    process.stdin.write("hello from the terminal\n")
    process.stdin.flush()
    lines.until(lambda line: "alice: hello from the terminal" in line)

    async def bob_talks() -> None:
        async with Client(live.http_url, token=bob_token) as bob, bob.room("lobby") as room:
            await room.send("hi alice \x1b[31mred\x1b[0m")
            async for event in room:
                if isinstance(event, Message) and event.user == "bob":
                    break

    asyncio.run(bob_talks())
    lines.until(lambda line: "* bob joined" in line)
    said = lines.until(lambda line: "bob: hi alice" in line)
    assert "\x1b" not in said  # no terminal escapes from other users
    lines.until(lambda line: "* bob left" in line)

    process.stdin.write("/who\n")
    process.stdin.flush()
    lines.until(lambda line: line.startswith("* online: alice"))
    process.stdin.close()  # end of input leaves the room
    assert process.wait(TIMEOUT) == 0


def test_chat_reports_a_refused_login(
    live: LiveServer, processes: list[subprocess.Popen[str]]
) -> None:
    env = {"ROOMCHAT_URL": live.http_url, "ROOMCHAT_TOKEN": "forged"}
    process = run_roomchat("chat", "lobby", env=env)
    processes.append(process)
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1
    assert "401" in err


def test_serve_answers_then_stops_on_a_signal(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    env = {
        "ROOMCHAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
    }
    process = run_roomchat("serve", "--port", str(port), env=env)
    processes.append(process)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "roomchat serve did not answer"
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)  # polling for the port to open
    assert response.json() == {"status": "ok"}
    process.terminate()
    _, err = process.communicate(timeout=TIMEOUT)
    # uvicorn shuts down gracefully, then re-raises the signal (newer) or exits 0 (older).
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in err


@pytest.mark.embedded_only
def test_no_password_and_no_terminal_is_one_line(live: LiveServer) -> None:
    """``roomchat send … </dev/null``: no traceback, one line that says what to do."""
    asyncio.run(live_token(live, "alice"))
    done = subprocess.run(
        [sys.executable, "-m", "roomchat", "send", "lobby", "hi", "--username", "alice"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=os.environ | {"ROOMCHAT_URL": live.http_url},
        timeout=TIMEOUT,
    )
    assert done.returncode == 1
    assert done.stderr == "roomchat send: no password: set ROOMCHAT_PASSWORD or use a terminal\n"


@pytest.mark.embedded_only
def test_the_password_is_asked_on_a_pseudo_terminal(live: LiveServer) -> None:
    """Through a real pseudo-terminal: the prompt shows, the typed password does not echo."""
    asyncio.run(live_token(live, "alice"))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "roomchat", "send", "lobby", "typed", "--username", "alice"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=os.environ | {"ROOMCHAT_URL": live.http_url},
        start_new_session=True,  # no controlling terminal: getpass uses this one (stdin)
    )
    os.close(follower)
    try:
        screen = read_pty_until(leader, b"Password for alice: ")
        os.write(leader, PASSWORD.encode() + b"\n")
        screen += read_pty_until(leader, b"sent message 1 to lobby")
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    assert PASSWORD.encode() not in screen


def read_pty_until(leader: int, wanted: bytes) -> bytes:
    """What the terminal shows until ``wanted``, waiting at most ``TIMEOUT`` for it."""
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while wanted not in seen:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([leader], [], [], max(left, 0))
        assert readable, f"not seen {wanted!r}; the terminal shows {seen!r}"
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process ended and closed the terminal
            chunk = b""
        assert chunk, f"not seen {wanted!r}; the terminal shows {seen!r}"
        seen += chunk
    return seen


@pytest.mark.embedded_only
def test_refusals_are_sentences(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = asyncio.run(live_token(live, "alice"))
    monkeypatch.setenv("ROOMCHAT_URL", live.http_url)
    monkeypatch.setenv("ROOMCHAT_TOKEN", token)
    assert main(["send", "lobby", "x" * 4001]) == 1
    error = capsys.readouterr().err
    assert "HTTP 422: text: the text is 4001 characters; at most 4000" in error, error
    assert main(["send", "no such room!", "hi"]) == 1
    error = capsys.readouterr().err
    assert "HTTP 422: room: String should match pattern" in error, error
    assert "'loc'" not in error


def test_user_commands_refuse_a_database_that_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run outside the server's folder, ``user add`` would make a new, empty database no
    server reads: it says where it looked instead, and makes one only when asked."""
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "erin", "--password-stdin"]) == 1
    assert f"there is no database at {tmp_path / 'roomchat.db'}" in capsys.readouterr().err
    assert not (tmp_path / "roomchat.db").exists()
    assert main(["user", "delete", "erin"]) == 1
    assert "there is no database at" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "erin", "--password-stdin", "--create-database"]) == 0
    out = capsys.readouterr().out
    assert f"created user erin (id 1) in {tmp_path / 'roomchat.db'} (a new database)" in out
    assert main(["user", "remove", "erin"]) == 0
    assert f"deleted user erin from {tmp_path / 'roomchat.db'}" in capsys.readouterr().out


@pytest.mark.embedded_only
def test_chat_refuses_unknown_commands_and_says_when_it_is_disconnected(
    live: LiveServer, processes: list[subprocess.Popen[str]]
) -> None:
    token = asyncio.run(live_token(live, "alice"))
    env = {"ROOMCHAT_URL": live.http_url, "ROOMCHAT_TOKEN": token}
    process = run_roomchat("chat", "lobby", env=env)
    processes.append(process)
    assert process.stdin is not None
    lines = Lines(process)
    lines.until(lambda line: "you are in lobby as alice" in line)

    process.stdin.write("/shrug\n//shrug is a command elsewhere\n")
    process.stdin.flush()
    lines.until(lambda line: line.startswith("! unknown command /shrug: not sent."))
    lines.until(lambda line: "alice: /shrug is a command elsewhere" in line)

    live.stop()
    lines.until(lambda line: line.startswith("* disconnected (") and "retrying…" in line)
    live.start()
    lines.until(lambda line: "* reconnected to lobby" in line)
    process.stdin.close()
    assert process.wait(TIMEOUT) == 0
    response = httpx.get(
        f"{live.http_url}/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {token}"}
    )
    assert [m["text"] for m in response.json()["messages"]] == ["/shrug is a command elsewhere"]


def test_user_list_and_passwd(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator lists the accounts and sets one's password; the new one logs in."""
    monkeypatch.setenv("ROOMCHAT_DATABASE_URL", live.settings.database_url)
    for name in ("erin", "Frank"):
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user", "add", name, "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[:-1]] == [["1", "erin"], ["2", "Frank"]]
    assert out[-1].startswith("2 users in ")

    new_password = "a new " + PASSWORD
    monkeypatch.setattr("sys.stdin", io.StringIO(new_password + "\n"))
    assert main(["user", "passwd", "frank", "--password-stdin"]) == 0
    assert "changed the password of frank" in capsys.readouterr().out
    assert login_works(live, "Frank", new_password)
    assert not login_works(live, "Frank", PASSWORD)

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "passwd", "frank", "--password-stdin"]) == 1
    assert "password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(new_password + "\n"))
    assert main(["user", "passwd", "nobody", "--password-stdin"]) == 1
    assert "no user is called 'nobody'" in capsys.readouterr().err


def test_user_add_on_a_postgresql_not_migrated_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_service(services.postgres_available(), "PostgreSQL is not running")
    name = services.database_name("unmigrated")
    url = services.create_database(name)
    try:
        monkeypatch.setenv("ROOMCHAT_DATABASE_URL", url)
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user", "add", "erin", "--password-stdin"]) == 1
        error = capsys.readouterr().err
        assert error.startswith("roomchat user: the database schema is at nothing"), error
        assert "roomchat migrate" in error
        assert error.count("\n") == 1
    finally:
        services.drop_database(name)
