"""A room held by a frozen writer holds up that room alone (issue 15, items 1 and 4).

On PostgreSQL the group commit takes each room with a try-lock: a room another session
holds (here the test's own connection in an open transaction, as a frozen worker holds
it, or a real worker stopped with SIGSTOP) leaves the batch for a lane of its own, and
the other rooms commit at once. A post still waiting at its deadline is refused and never
stored later; a commit whose answer was lost is "may or may not be stored"; /readyz
reports a writer whose transaction has run past the deadline. PostgreSQL's bounds are on
every session of the server's engine, and the idle-in-transaction one ends a frozen holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime.broker.memory import MemoryBroker
from roomchat.realtime.writer import (
    NOT_STORED_IN_TIME,
    OUTCOME_UNKNOWN,
    STORE_FAILED,
    MessageWriter,
    StoreOutcomeUnknownError,
)
from roomchat.store import statements
from roomchat.store.engine import DatabaseBounds, create_engine
from roomchat.store.schema import utcnow
from roomchat.store.through_engine import EngineStore, nothing_committed
from tests import services
from tests.conftest import TEST_REGISTRATIONS_PER_ADDRESS, TEST_SECRET, make_settings
from tests.helpers import free_port, live_token
from tests.live import LiveServer
from tests.serverprocess import ServerProcess
from tests.waiting import eventually
from tests.wsclient import join, recv_messages, recv_type

pytestmark = pytest.mark.embedded_only  # each test chooses its database itself

#: The post deadline of the tests that wait for it: short, so that they are quick.
DEADLINE = 3.0
#: A bound on an answer that must not wait for a held room: well under every hold here.
PROMPT = 2.0
#: How long past its deadline a refusal may take to arrive (a rollback, a busy machine).
MARGIN = 3.0


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Holder:
    """A PostgreSQL session of the test's own that takes locks in an open transaction and
    keeps them, as a frozen worker would (it is not the server's: no idle bound)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, url: str) -> Holder:
        connection = await asyncpg.connect(dsn(url), timeout=5)
        await connection.execute("BEGIN")
        return cls(connection)

    async def hold_room(self, room: str) -> None:
        key = statements.room_lock_key(room)
        await self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)

    async def hold_key(self, key: int) -> None:
        await self._connection.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def hold_messages(self) -> None:
        """No one may write a message until release (reading goes on)."""
        await self._connection.execute("LOCK TABLE messages IN SHARE MODE")

    async def locks(self, locktype: str, *, granted: bool) -> int:
        """Locks of this database of ``locktype`` (``advisory``, ``relation``) held, or
        waited for, by other sessions."""
        count = await self._connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = $1 AND granted = $2 "
            "AND pid <> pg_backend_pid() "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            locktype,
            granted,
        )
        return int(count)

    async def sessions(self, state: str) -> int:
        """Other sessions of this database in ``state`` (``idle in transaction``...)."""
        count = await self._connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = $1 "
            "AND pid <> pg_backend_pid() AND datname = current_database()",
            state,
        )
        return int(count)

    async def release(self) -> None:
        """Let go of everything held (and go on watching)."""
        await self._connection.execute("ROLLBACK")
        await self._connection.execute("BEGIN")

    async def close(self) -> None:
        await self._connection.close()


@pytest.fixture
async def holder(postgres_url: str) -> AsyncIterator[Holder]:
    held = await Holder.open(postgres_url)
    yield held
    await held.close()


@pytest.fixture
def scaled(postgres_url: str, redis_prefix: str) -> dict[str, Any]:
    """The scaled backend's settings: this test's PostgreSQL database and Redis prefix."""
    return {
        "database_url": postgres_url,
        "redis_url": services.REDIS_URL,
        "redis_prefix": redis_prefix,
    }


def texts(page: httpx.Response) -> list[str]:
    return [message["text"] for message in page.json()["messages"]]


async def test_a_held_room_is_refused_by_its_deadline_and_holds_up_no_other_room(
    live_server: Callable[..., LiveServer], scaled: dict[str, Any], holder: Holder
) -> None:
    server = live_server(**scaled, post_deadline_seconds=DEADLINE)
    token = await live_token(server, "alice")
    in_held, _, _ = await join(server, "held", token)
    in_free, _, _ = await join(server, "free-socket", token)
    await holder.hold_room("held")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth, timeout=30) as client:

        def post(room: str, message: str) -> asyncio.Task[httpx.Response]:
            body = {"text": message}
            return asyncio.create_task(client.post(f"/api/rooms/{room}/messages", json=body))

        held = post("held", "too late")
        await in_held.send(json.dumps({"type": "message", "text": "too late too"}))
        others = [post(f"free-{n}", f"prompt {n}") for n in range(3)]
        await in_free.send(json.dumps({"type": "message", "text": "prompt socket"}))
        # Answered while the held room's posts still wait: nothing queues behind them.
        for response in await asyncio.wait_for(asyncio.gather(*others), PROMPT):
            assert response.status_code == 201, response.text
        assert (await recv_type(in_free, "message", PROMPT))["text"] == "prompt socket"
        assert not held.done()
        await eventually(lambda: holder.locks("advisory", granted=False))  # its lane waits

        refused = await asyncio.wait_for(held, DEADLINE + MARGIN)
        assert refused.status_code == 503
        assert refused.json() == {"detail": NOT_STORED_IN_TIME}
        assert refused.headers["Retry-After"].isdigit()
        error = await recv_type(in_held, "error", DEADLINE + MARGIN)
        assert (error["code"], error["detail"]) == ("store_unavailable", NOT_STORED_IN_TIME)

        await holder.release()
        after = await client.post("/api/rooms/held/messages", json={"text": "after"})
        assert after.status_code == 201
        assert (await recv_type(in_held, "message"))["text"] == "after"
        # Refused means never stored, not even once the room was free again.
        assert texts(await client.get("/api/rooms/held/messages")) == ["after"]
    await in_held.close()
    await in_free.close()


async def test_posts_waiting_for_a_held_room_are_stored_once_in_order_when_it_is_freed(
    live_server: Callable[..., LiveServer], scaled: dict[str, Any], holder: Holder
) -> None:
    server = live_server(**scaled)
    token = await live_token(server, "alice")
    sender, _, _ = await join(server, "held", token)
    await holder.hold_room("held")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth, timeout=30) as client:
        await sender.send(json.dumps({"type": "message", "text": "0"}))
        await eventually(lambda: holder.locks("advisory", granted=False))  # in its lane
        # Later posts for the room go to its lane, behind the first, in order.
        http_post = asyncio.create_task(client.post("/api/rooms/held/messages", json={"text": "1"}))
        for n in range(2, 6):
            await sender.send(json.dumps({"type": "message", "text": str(n)}))
        await holder.release()  # just before any deadline
        assert (await asyncio.wait_for(http_post, 10)).status_code == 201
        received = await recv_messages(sender, 6)
        assert sorted(m["text"] for m in received) == [str(n) for n in range(6)]
        socket_order = [m["text"] for m in received if m["text"] != "1"]  # the post races
        assert socket_order == ["0", "2", "3", "4", "5"]
        assert [m["id"] for m in received] == sorted(m["id"] for m in received)
        stored = texts(await client.get("/api/rooms/held/messages"))
    assert stored == [m["text"] for m in received]  # each once, as delivered
    await sender.close()


async def test_readyz_reports_a_stuck_writer_and_a_post_in_line_is_refused_meanwhile(
    live_server: Callable[..., LiveServer], scaled: dict[str, Any], holder: Holder
) -> None:
    # The INSERT waits for the table (up to the lock bound, long here) past the deadline.
    server = live_server(**scaled, post_deadline_seconds=1, database_lock_timeout_seconds=60)
    token = await live_token(server, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    await holder.hold_messages()
    async with httpx.AsyncClient(base_url=server.http_url, headers=auth, timeout=30) as client:

        async def writer_is(state: str) -> bool:
            answer = await client.get("/readyz")
            return bool(answer.json()["checks"].get("writer") == state)

        assert await writer_is("ok")
        waits = asyncio.create_task(client.post("/api/rooms/lobby/messages", json={"text": "a"}))
        await eventually(lambda: holder.locks("relation", granted=False))  # its INSERT waits
        in_line = await client.post("/api/rooms/lobby/messages", json={"text": "b"})
        assert in_line.status_code == 503
        assert in_line.json() == {"detail": NOT_STORED_IN_TIME}
        await eventually(lambda: writer_is("failed"))
        stuck = await client.get("/readyz")
        assert stuck.status_code == 503
        assert stuck.json()["checks"] == {"store": "ok", "redis": "ok", "writer": "failed"}

        await holder.release()
        assert (await asyncio.wait_for(waits, 10)).status_code == 201
        await eventually(lambda: writer_is("ok"))
        assert (await client.get("/readyz")).status_code == 200
        assert texts(await client.get("/api/rooms/lobby/messages")) == ["a"]


async def test_on_sqlite_a_post_still_in_line_at_its_deadline_is_refused(
    live_server: Callable[..., LiveServer],
) -> None:
    """SQLite keeps its one write lock (no lanes); the deadline and readiness hold there too."""
    server = live_server(post_deadline_seconds=1)
    token = await live_token(server, "alice")
    ws, _, _ = await join(server, "lobby", token)
    path = make_url(server.settings.database_url).database
    assert path is not None
    other_process = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other_process.execute("BEGIN IMMEDIATE")  # the write lock, as a long transaction elsewhere
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as client:

            async def writer_stuck() -> bool:
                answer = await client.get("/readyz")
                return bool(answer.json()["checks"].get("writer") == "failed")

            await ws.send(json.dumps({"type": "message", "text": "waits"}))
            await eventually(writer_stuck)  # its transaction waits for the lock
            await ws.send(json.dumps({"type": "message", "text": "refused"}))
            error = await recv_type(ws, "error")
            assert (error["code"], error["detail"]) == ("store_unavailable", NOT_STORED_IN_TIME)
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    assert (await recv_type(ws, "message"))["text"] == "waits"
    await ws.send(json.dumps({"type": "message", "text": "last"}))
    assert (await recv_type(ws, "message"))["text"] == "last"
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        page = await client.get(
            "/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {token}"}
        )
        assert texts(page) == ["waits", "last"]
        assert (await client.get("/readyz")).status_code == 200
    await ws.close()


async def test_the_servers_sessions_are_bounded_and_a_migrations_statements_are_not(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database_url=postgres_url)
    settings_shown = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
    for bounds, expected in (
        (DatabaseBounds.of(settings), ["2s", "10s", "5s"]),
        (DatabaseBounds.of(settings, statement=False), ["2s", "0", "5s"]),
        (None, ["0", "0", "0"]),
    ):
        engine = create_engine(postgres_url, bounds)
        try:
            async with engine.connect() as connection:
                shown = [
                    (await connection.execute(text(f"SHOW {name}"))).scalar()
                    for name in settings_shown
                ]
        finally:
            await engine.dispose()
        assert shown == expected, bounds


async def test_postgresql_ends_a_session_left_idle_in_a_transaction_and_frees_its_room(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, DatabaseBounds(idle_in_transaction=0.5))
    waiter = await asyncpg.connect(dsn(postgres_url), timeout=5)
    key = statements.room_lock_key("lobby")
    try:
        async with engine.connect() as frozen:
            await frozen.execute(statements.LOCK_ROOM, {"key": key})
            await frozen.execute(
                statements.INSERT_MESSAGE,
                {
                    "room": "lobby",
                    "user_id": None,
                    "author": "a",
                    "text": "lost",
                    "created_at": utcnow(),
                },
            )
            # Now it sends nothing, as a frozen worker would. Another session waits for the
            # room: PostgreSQL ends the idle session, which frees it.
            await waiter.execute("SET lock_timeout = '20s'")
            async with asyncio.timeout(20):
                await waiter.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            with pytest.raises(sqlalchemy.exc.DBAPIError) as ended:
                await frozen.commit()
            assert nothing_committed(ended.value)  # told "not stored": and it is not
        assert await waiter.fetchval("SELECT count(*) FROM messages") == 0
    finally:
        await waiter.close()
        await engine.dispose()


class CuttableProxy:
    """A TCP proxy to PostgreSQL whose connections can be cut at once, as a network
    partition would cut them, without PostgreSQL hearing of it."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self.port = free_port()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        self._writers += [writer, up_writer]

        async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                target.write(data)
                await target.drain()

        with contextlib.suppress(ConnectionError, OSError):  # cut
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_commit_whose_answer_is_lost_is_may_or_may_not_be_stored(
    postgres_url: str, holder: Holder
) -> None:
    """The COMMIT reaches PostgreSQL, which is made to finish it only later (a deferred
    trigger waits for a lock the test holds); the connection is cut meanwhile. The sender
    is told it may or may not be stored, and indeed it is stored."""
    url = make_url(postgres_url)
    setup = await asyncpg.connect(dsn(postgres_url), timeout=5)
    await setup.execute(
        "CREATE FUNCTION hold_commit() RETURNS trigger AS "
        "$$ BEGIN PERFORM pg_advisory_xact_lock(7777); RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    await setup.execute(
        "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON messages "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()"
    )
    proxy = CuttableProxy(url.port or 5432)
    await proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = create_engine(through_proxy, DatabaseBounds(lock=60, statement=60))
    tested = EngineStore(engine)
    writer = MessageWriter(broker=MemoryBroker(), store=tested, metrics=Metrics())
    try:
        alice = await tested.create_user(username="alice", password_hash="-")
        await holder.hold_key(7777)
        posted = writer.submit("lobby", store.Draft(alice.id, "alice", "in doubt"))
        await eventually(lambda: holder.locks("advisory", granted=False))  # COMMIT is waiting
        proxy.cut()
        with pytest.raises(StoreOutcomeUnknownError) as unknown:
            await asyncio.wait_for(posted, 20)
        assert str(unknown.value) == OUTCOME_UNKNOWN
        await holder.release()  # PostgreSQL finishes the COMMIT nobody hears of
        await eventually(
            lambda: setup.fetchval("SELECT count(*) FROM messages WHERE text = 'in doubt'")
        )
    finally:
        await writer.close()
        await engine.dispose()
        await proxy.close()
        await setup.execute("DROP TRIGGER hold_commit ON messages")
        await setup.execute("DROP FUNCTION hold_commit()")
        await setup.close()


async def test_a_frozen_worker_holds_up_no_other_worker_and_never_commits_late(
    tmp_path: Path,
    live_server: Callable[..., LiveServer],
    scaled: dict[str, Any],
    holder: Holder,
) -> None:
    """A real worker stopped (SIGSTOP) while it holds a room: the other worker's posts to
    other rooms are answered at once, to that room once PostgreSQL has ended the frozen
    session; resumed, the frozen worker's post fails and is not stored."""
    idle_bound = 3.0
    env = {
        "ROOMCHAT_SECRET_KEY": TEST_SECRET,
        "ROOMCHAT_DATABASE_URL": scaled["database_url"],
        "ROOMCHAT_REDIS_URL": scaled["redis_url"],
        "ROOMCHAT_REDIS_PREFIX": scaled["redis_prefix"],
        "ROOMCHAT_DATA_DIR": str(tmp_path / "data"),
        "ROOMCHAT_REGISTRATIONS_PER_ADDRESS": str(TEST_REGISTRATIONS_PER_ADDRESS),
        "ROOMCHAT_LOG_LEVEL": "warning",
        # Its INSERT waits for the table while it holds the room: it is frozen there.
        "ROOMCHAT_DATABASE_LOCK_TIMEOUT_SECONDS": "60",
        "ROOMCHAT_DATABASE_IDLE_IN_TRANSACTION_SECONDS": str(idle_bound),
    }
    frozen = ServerProcess(env, cwd=tmp_path)
    try:
        await asyncio.to_thread(frozen.wait_ready)
        other = live_server(**scaled)
        token = await live_token(other, "alice")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=auth, timeout=60) as client:
            # Its statements prepared, as on any connection in use for a while (see README).
            warm = await client.post(f"{frozen.url}/api/rooms/warm/messages", json={"text": "w"})
            assert warm.status_code == 201
            await holder.hold_messages()
            stalled = asyncio.create_task(
                client.post(f"{frozen.url}/api/rooms/held/messages", json={"text": "frozen"})
            )

            async def holds_room_and_waits() -> bool:
                return await holder.locks("advisory", granted=True) == 1 and bool(
                    await holder.locks("relation", granted=False)
                )

            await eventually(holds_room_and_waits)
            os.kill(frozen.pid, signal.SIGSTOP)
            try:
                await holder.release()  # its INSERT ends; its session idles, holding the room
                # (Between two statements, as nearly always: "idle in transaction".)
                await eventually(lambda: holder.sessions("idle in transaction"))
                same_room = asyncio.create_task(
                    client.post(
                        f"{other.http_url}/api/rooms/held/messages", json={"text": "meanwhile"}
                    )
                )
                free = await asyncio.wait_for(
                    client.post(f"{other.http_url}/api/rooms/free/messages", json={"text": "free"}),
                    PROMPT,  # under the idle bound: the room is still held
                )
                assert free.status_code == 201
                stored = await asyncio.wait_for(same_room, idle_bound + DEADLINE + MARGIN)
                assert stored.status_code == 201, stored.text
            finally:
                os.kill(frozen.pid, signal.SIGCONT)
            failed = await asyncio.wait_for(stalled, 30)
            assert failed.status_code == 503
            assert failed.json()["detail"] in (STORE_FAILED, OUTCOME_UNKNOWN)
            page = await client.get(f"{other.http_url}/api/rooms/held/messages")
            assert texts(page) == ["meanwhile"]  # and never "frozen"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen.pid, signal.SIGCONT)  # also when the test failed while it was stopped
        frozen.stop()
