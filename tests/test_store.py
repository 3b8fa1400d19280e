"""One contract for every store: the SQLite fast path (sqlite3 on its own thread), SQLite
through SQLAlchemy's engine, and PostgreSQL. The same test bodies run on each; beside
them, the SQLite fast path's checkpointer (its WAL kept short).

Every store runs the same statements (``roomchat.store.statements``), so a row written by
one reads back the same through another on the same database (``Opened.other``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from roomchat import store
from roomchat.ops.metrics import Metrics
from roomchat.realtime import events
from roomchat.realtime.broker.memory import MemoryBroker
from roomchat.realtime.writer import MessageWriter, StoreUnavailableError
from roomchat.store import statements
from roomchat.store.compiled import Compiled
from roomchat.store.engine import create_engine, migrate
from roomchat.store.open import Store, open_store
from roomchat.store.schema import Message
from roomchat.store.sqlite import SQLiteStore
from roomchat.store.statements import USERS_BY_NAME
from roomchat.store.through_engine import EngineStore
from roomchat.store.wal import Checkpointer
from tests.helpers import ALLOW_INSERTS, REFUSE_INSERTS

FIELDS = ("id", "room", "user_id", "author", "text", "created_at")


@dataclass
class Opened:
    """The store under test, on a database with Alice (id 1) and bob (id 2)."""

    store: Store
    #: Another store on the same database: the other SQLite path, or a second engine.
    other: Callable[[], Awaitable[Store]]
    engine: AsyncEngine
    dialect: str


@pytest.fixture(params=["sqlite3", "sqlite-engine", "postgresql"])
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}"
    engine = create_engine(url)
    await migrate(engine)
    path = str(tmp_path / "roomchat.db")
    opened: list[Store] = []

    async def other() -> Store:
        made: Store = (
            await SQLiteStore.open(path)
            if request.param == "sqlite-engine"
            else EngineStore(engine)
        )
        opened.append(made)
        return made

    if request.param == "sqlite3":
        tested: Store = await open_store(engine)
        assert isinstance(tested, SQLiteStore)
    else:
        tested = EngineStore(engine)
    await tested.create_user(username="Alice", password_hash="hash-a")
    await tested.create_user(username="bob", password_hash="hash-b")
    yield Opened(tested, other, engine, engine.dialect.name)
    for made in opened:
        await made.close()
    await tested.close()
    await engine.dispose()


def fields(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(m, name) for name in FIELDS) for m in messages]


async def read_back(any_store: Store, room: str) -> list[Message]:
    return await any_store.list_messages(room=room, limit=100)


async def test_messages_read_back_as_written(opened: Opened) -> None:
    tested, other = opened.store, await opened.other()
    stored = await tested.add_messages_to_rooms(
        drafts={
            "lobby": [store.Draft(1, "Alice", "one"), store.Draft(2, "bob", "two ✓")],
            "attic": [store.Draft(2, "bob", "three")],
        }
    )
    assert stored["attic"].previous_id == 0
    assert stored["lobby"].previous_id == 0
    for room in ("lobby", "attic"):
        written = fields(stored[room].messages)
        assert fields(await read_back(tested, room)) == written
        assert fields(await read_back(other, room)) == written
    created_at = stored["lobby"].messages[0].created_at
    assert created_at.tzinfo == UTC
    # Rooms in name order, each room's ids in the order given.
    assert [m.id for m in stored["attic"].messages + stored["lobby"].messages] == [1, 2, 3]
    if opened.dialect == "sqlite":
        async with opened.engine.connect() as connection:
            raw = await connection.exec_driver_sql("SELECT created_at FROM messages WHERE id = 1")
            assert raw.scalar_one() == created_at.strftime("%Y-%m-%d %H:%M:%S.%f")


async def test_pages_and_latest_ids(opened: Opened) -> None:
    tested, other = opened.store, await opened.other()
    batch = (
        await other.add_messages_to_rooms(
            drafts={"lobby": [store.Draft(1, "Alice", f"m{n}") for n in range(5)]}
        )
    )["lobby"]
    expected = fields(batch.messages)
    assert fields(await tested.list_messages(room="lobby", limit=50)) == expected
    assert fields(await tested.list_messages(room="lobby", limit=2, before=5)) == expected[2:4]
    assert fields(await tested.list_messages(room="lobby", limit=2, after=1)) == expected[1:3]
    between = await tested.list_messages(room="lobby", limit=9, after=1, before=4)
    assert fields(between) == expected[1:3]
    assert fields(await tested.list_messages(room="lobby", after=2, limit=9)) == expected[2:]
    assert await tested.list_messages(room="lobby", after=2**70, limit=9) == []
    assert fields(await tested.list_messages(room="lobby", limit=9, before=2**70)) == expected
    assert await tested.latest_message_id(room="lobby") == batch.messages[-1].id
    assert await tested.latest_message_id(room="empty") == 0


async def test_rooms_with_messages_in_byte_order(opened: Opened) -> None:
    names = ["b", "B", "a-1", "a_1", "Z9", "lobby"]
    await opened.store.add_messages_to_rooms(
        drafts={name: [store.Draft(1, "Alice", "hi")] for name in names}
    )
    assert await opened.store.rooms_with_messages(limit=100) == sorted(names)
    assert await opened.store.rooms_with_messages(limit=2, after="Z9") == sorted(names)[2:4]
    assert await opened.store.rooms_with_messages(limit=5, after="lobby") == []


async def test_users_by_name_ignoring_case(opened: Opened) -> None:
    tested = opened.store
    found = await tested.find_users(usernames=["aLiCe", "carol", "BOB"])
    assert list(found) == ["alice", "bob"]
    assert found["alice"][:2] == (1, "Alice")  # the name as registered
    assert found["alice"].created_at.tzinfo == UTC
    user = await tested.get_user(username="ALICE")
    assert user is not None
    assert (user.id, user.username, user.password_hash) == (1, "Alice", "hash-a")
    assert user.created_at == found["alice"].created_at
    assert await tested.get_user(username="carol") is None
    many = [f"user{n}" for n in range(1200)]  # more than one query's worth of names
    assert list(await tested.find_users(usernames=[*many, "bob"])) == ["bob"]
    assert tested.reuses_ids == (opened.dialect == "sqlite")


async def test_a_taken_name_is_refused_and_a_deleted_user_leaves_their_messages(
    opened: Opened,
) -> None:
    tested = opened.store
    with pytest.raises(store.UsernameTakenError):
        await tested.create_user(username="ALICE", password_hash="x")
    carol = await tested.create_user(username="Carol", password_hash="hash-c")
    assert carol.id > 2  # PostgreSQL spent an id on the refused one
    assert carol.created_at.tzinfo == UTC
    await tested.add_messages_to_rooms(drafts={"lobby": [store.Draft(carol.id, "Carol", "bye")]})
    assert await tested.delete_user(username="carol")
    assert not await tested.delete_user(username="carol")
    assert await tested.get_user(username="Carol") is None
    (kept,) = await read_back(tested, "lobby")
    assert (kept.user_id, kept.author, kept.text) == (None, "Carol", "bye")


async def test_users_are_listed_by_id_and_their_password_hash_replaced(opened: Opened) -> None:
    tested = opened.store
    listed = await tested.list_users()
    assert [(user.id, user.username) for user in listed] == [(1, "Alice"), (2, "bob")]
    assert listed[0].created_at.tzinfo == UTC
    assert [user.username for user in await tested.list_users(after=1)] == ["bob"]
    assert [user.username for user in await tested.list_users(limit=1)] == ["Alice"]
    assert await tested.set_password_hash(username="ALICE", password_hash="hash-new")
    assert not await tested.set_password_hash(username="carol", password_hash="x")
    other = await opened.other()  # written through one, read through the other
    user = await other.get_user(username="alice")
    assert user is not None
    assert user.password_hash == "hash-new"


async def test_each_batch_knows_the_message_before_it(opened: Opened) -> None:
    tested = opened.store
    first = await tested.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "a", "x")]})
    batches = [
        await tested.add_messages_to_rooms(
            drafts={"lobby": [store.Draft(1, "a", "y"), store.Draft(1, "a", "z")]}
        ),
        await tested.add_messages_to_rooms(
            drafts={"lobby": [store.Draft(1, "a", "w")], "attic": [store.Draft(1, "a", "v")]}
        ),
    ]
    lobby = [batch["lobby"] for batch in batches]
    assert lobby[0].previous_id == first["lobby"].messages[0].id
    assert lobby[1].previous_id == lobby[0].messages[-1].id
    assert batches[1]["attic"].previous_id == 0
    assert [m.text for m in await read_back(tested, "lobby")] == ["x", "y", "z", "w"]


@pytest.mark.parametrize("wait", [None, 5.0], ids=["never-waits", "waits"])
async def test_two_stores_on_one_database_keep_each_room_linked(
    opened: Opened, wait: float | None
) -> None:
    """Two processes' writers (here two stores) interleave; each batch still names the
    message just before it in its room, as listeners on every worker rely on. A writer
    that does not wait leaves out the rooms the other holds, and stores none of theirs."""
    tested, other = opened.store, await opened.other()
    rooms = ("a", "b", "c")
    written: dict[str, list[str]] = {room: [] for room in rooms}

    async def write(writer: Store, n: int) -> dict[str, store.StoredBatch]:
        drafts = {
            room: [store.Draft(1, "a", f"{n}-{k}") for k in range(n % 3 + 1)] for room in rooms
        }
        stored = await writer.add_messages_to_rooms(drafts=drafts, wait=wait)
        for room in stored:
            assert [m.text for m in stored[room].messages] == [d.text for d in drafts[room]]
            written[room] += [d.text for d in drafts[room]]
        return stored

    results = await asyncio.gather(*(write(tested if n % 2 else other, n) for n in range(60)))
    for room in rooms:
        messages = await tested.list_messages(room=room, after=0, limit=1000)
        assert sorted(m.text for m in messages) == sorted(written[room])  # nothing else
        ids = [m.id for m in messages]
        for result in results:
            if wait is not None or opened.dialect == "sqlite":
                assert room in result  # waited for, or SQLite's one write lock
            if room not in result:
                continue
            batch = result[room]
            first = ids.index(batch.messages[0].id)
            assert batch.previous_id == (ids[first - 1] if first else 0)
            assert ids[first : first + len(batch.messages)] == [m.id for m in batch.messages]


async def test_a_failed_write_is_rolled_back_and_reported_to_senders(opened: Opened) -> None:
    async def run(statements: list[str]) -> None:
        async with opened.engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))

    await run(REFUSE_INSERTS[opened.dialect])  # a real database error, from another connection
    metrics = Metrics()
    writer = MessageWriter(broker=MemoryBroker(), store=opened.store, metrics=metrics)
    posts = [writer.submit("lobby", store.Draft(1, "Alice", text)) for text in ("a", "b")]
    for post in posts:
        with pytest.raises(StoreUnavailableError):
            await post
    errors = metrics.registry.get_sample_value("roomchat_backend_errors_total", {"kind": "store"})
    assert errors == 2  # one per message that could not be stored (each was tried alone)
    await run(ALLOW_INSERTS[opened.dialect])
    # Nothing half-written, and the store is usable again.
    assert await read_back(opened.store, "lobby") == []
    stored = await writer.submit("lobby", store.Draft(1, "Alice", "after"))
    assert [m.id for m in await read_back(opened.store, "lobby")] == [stored.id]
    await writer.close()


# -- exactly-once sends: a client key stores once ----------------------------------------


def keyed(user_id: int, text: str, client_id: str) -> store.Draft:
    return store.Draft(user_id, "Alice" if user_id == 1 else "bob", text, client_id)


async def test_a_repeated_client_key_stores_nothing_new(opened: Opened) -> None:
    tested, other = opened.store, await opened.other()
    first = (await tested.add_messages_to_rooms(drafts={"lobby": [keyed(1, "hi", "k1")]}))["lobby"]
    (message,) = first.messages
    assert (first.answers(), first.repeats) == ([message], {})
    assert message.client_id == "k1"
    # Again, through another store on the same database (another worker), with another
    # text: the first message answers, nothing is stored, nothing is to be published.
    again = await other.add_messages_to_rooms(
        drafts={"lobby": [keyed(1, "hi, again", "k1"), store.Draft(1, "Alice", "plain")]}
    )
    repeat, plain = again["lobby"].answers()
    assert fields([repeat]) == fields([message])
    assert list(again["lobby"].repeats) == [0]  # the first draft; the second is new
    assert again["lobby"].messages == [plain]
    assert again["lobby"].previous_id == message.id
    # The key is the user's in the room: another user, or another room, is new.
    others = await tested.add_messages_to_rooms(
        drafts={"lobby": [keyed(2, "bob's", "k1")], "attic": [keyed(1, "attic", "k1")]}
    )
    assert [len(batch.messages) for batch in others.values()] == [1, 1]
    assert not any(batch.repeats for batch in others.values())
    texts = [m.text for m in await read_back(tested, "lobby")]
    assert texts == ["hi", "plain", "bob's"]


async def test_a_key_repeated_inside_one_batch_stores_once(opened: Opened) -> None:
    drafts = [keyed(1, "one", "k"), keyed(1, "two", "k"), keyed(2, "bob", "k"), keyed(1, "x", "j")]
    batch = (await opened.store.add_messages_to_rooms(drafts={"lobby": drafts}))["lobby"]
    assert [m.text for m in batch.answers()] == ["one", "one", "bob", "x"]
    assert list(batch.repeats) == [1]
    assert batch.answers()[1] is batch.answers()[0]
    assert [m.text for m in batch.messages] == ["one", "bob", "x"]
    assert [m.id for m in batch.messages] == sorted(m.id for m in batch.messages)
    assert fields(await read_back(opened.store, "lobby")) == fields(batch.messages)


async def test_a_key_older_than_the_window_is_new_again(opened: Opened) -> None:
    tested = opened.store
    first = (await tested.add_messages_to_rooms(drafts={"lobby": [keyed(1, "old", "k")]}))["lobby"]
    older = store.CLIENT_ID_WINDOW + timedelta(minutes=1)
    async with opened.engine.begin() as connection:
        aged = update(statements.messages).values(created_at=first.messages[0].created_at - older)
        await connection.execute(aged)
    again = (await tested.add_messages_to_rooms(drafts={"lobby": [keyed(1, "new", "k")]}))["lobby"]
    assert (len(again.messages), again.repeats) == (1, {})
    # Now the newer one answers the key (the old one is out of the window).
    third = (await tested.add_messages_to_rooms(drafts={"lobby": [keyed(1, "?", "k")]}))["lobby"]
    assert third.messages == []
    assert [m.id for m in third.answers()] == [again.messages[0].id]
    assert [m.text for m in await read_back(tested, "lobby")] == ["old", "new"]


async def test_many_keys_in_one_batch_are_looked_up_in_chunks(opened: Opened) -> None:
    count = statements.KEYS_PER_QUERY * 2 + 7
    drafts = [keyed(1, f"m{n}", f"key-{n}") for n in range(count)]
    await opened.store.add_messages_to_rooms(drafts={"lobby": drafts})
    again = await opened.store.add_messages_to_rooms(drafts={"lobby": drafts[::-1]})
    assert again["lobby"].messages == []
    assert [m.text for m in again["lobby"].answers()] == [d.text for d in drafts[::-1]]
    assert len(await opened.store.list_messages(room="lobby", limit=200, after=0)) == 200


#: 20,000 messages in two rooms over a day, two thirds of them keyed.
PG_KEYED_ROWS = """INSERT INTO messages (room, user_id, author, text, created_at, client_id)
SELECT CASE WHEN g % 10 = 0 THEN 'attic' ELSE 'lobby' END, 1 + g % 2, 'a', 't',
       now() - g * interval '4 seconds', CASE WHEN g % 3 = 0 THEN NULL ELSE 'k' || g END
FROM generate_series(1, 20000) AS g"""


async def test_the_key_lookup_uses_its_partial_index(opened: Opened) -> None:
    """Each key is one lookup in the partial index, bounded by the window."""
    params = {"room": "lobby", "client_ids": ["k1", "k2"], "since": datetime.now(UTC)}
    lookup = statements.KEYED_SINCE.params(**params)
    sql = lookup.compile(dialect=opened.engine.dialect, compile_kwargs={"literal_binds": True})
    async with opened.engine.connect() as connection:
        if opened.dialect == "postgresql":  # its planner needs rows and their statistics
            await connection.execute(text(PG_KEYED_ROWS))
            await connection.execute(text("ANALYZE messages"))
            plan = await connection.execute(text(f"EXPLAIN {sql}"))
        else:
            plan = await connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
        lines = "\n".join(str(row[-1]) for row in plan)
    if opened.dialect == "sqlite":
        index = "USING INDEX ix_messages_client_id (room=? AND client_id=? AND created_at>?)"
        assert index in lines, lines
    else:
        assert "Index Scan using ix_messages_client_id" in lines, lines
        condition = lines.split("Index Cond:")[1].split("\n")[0]
        for column in ("(room)::text = ", "(client_id)::text = ANY", "(created_at > "):
            assert column in condition, lines


async def test_only_a_batch_with_a_key_runs_the_lookup(opened: Opened) -> None:
    """The unkeyed path runs the statements it always ran; a key adds one query."""
    executed = await trace_statements(opened)
    await opened.store.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "a")]})
    unkeyed, executed[:] = list(executed), []
    await opened.store.add_messages_to_rooms(drafts={"lobby": [keyed(1, "b", "k")]})
    assert not any("client_id IN" in sql for sql in unkeyed), unkeyed
    assert len(executed) == len(unkeyed) + 1, (unkeyed, executed)
    assert sum("client_id IN" in sql for sql in executed) == 1


async def trace_statements(opened: Opened) -> list[str]:
    """The SQL of every statement the store under test runs from now on."""
    executed: list[str] = []
    tested = opened.store
    if isinstance(tested, SQLiteStore):
        runner = tested._sqlite

        def trace(db: sqlite3.Connection) -> None:
            db.set_trace_callback(executed.append)

        await runner._run(trace)
        return executed

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    event.listen(opened.engine.sync_engine, "before_cursor_execute", seen)
    return executed


async def test_two_writers_with_one_key_store_it_once(opened: Opened) -> None:
    """Two workers' writers with the same key at once: the room's lock makes one of them
    see the other's message. (They wait for the room, as lanes do: without ``wait`` a
    writer that finds the room taken leaves it out.)"""
    tested, other = opened.store, await opened.other()
    results = await asyncio.gather(
        *(
            writer.add_messages_to_rooms(
                drafts={"lobby": [keyed(1, f"try {n}", "same")]}, wait=10.0
            )
            for n, writer in enumerate([tested, other] * 5)
        )
    )
    assert sum(len(result["lobby"].messages) for result in results) == 1
    assert len({result["lobby"].answers()[0].id for result in results}) == 1
    assert len(await read_back(tested, "lobby")) == 1


async def test_the_writer_publishes_a_repeat_once_and_answers_both(opened: Opened) -> None:
    broker = MemoryBroker()
    writer = MessageWriter(broker=broker, store=opened.store, metrics=Metrics())
    async with broker.subscribe("lobby") as subscription:
        # Submitted back to back: one batch, where the second repeats the first's key.
        posts = [writer.submit("lobby", keyed(1, text, "k")) for text in ("a", "b")]
        posts.append(writer.submit("lobby", store.Draft(1, "Alice", "c")))
        first, repeat, plain = [await post for post in posts]
        assert repeat is first
        assert plain.id > first.id
        again = await writer.submit("lobby", keyed(1, "d", "k"))  # a batch of its own
        assert again.id == first.id
        published = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
    assert published == [
        events.room_payload(events.message_event(first), 0),
        events.room_payload(events.message_event(plain), first.id),
    ]
    await writer.close()


# -- the SQLite fast path's own parts ---------------------------------------------------------


def test_an_in_list_is_bound_as_sqlalchemy_expands_it() -> None:
    compiled = Compiled(USERS_BY_NAME)
    for names in ([], ["a"], ["a", "b", "c"]):
        sql, values = compiled.bind({"names": names})
        expanded = compiled._compiled.construct_expanded_state({"names": names})
        assert (sql, values) == (expanded.statement, expanded.positional_parameters)


def test_compiling_an_insert_for_sqlite_leaves_its_returning_copies_whole() -> None:
    """The engine's INSERT ... RETURNING is a copy of the statement the fast path compiles;
    it must still return the new ids (once it returned only the last 1,000-row page's)."""
    Compiled(statements.INSERT_MESSAGE, ["room", "user_id", "author", "text", "created_at"])
    returning = statements.INSERT_MESSAGE.returning(*statements.messages.primary_key)
    assert list(returning.exported_columns) == [statements.messages.c.id]


async def test_a_database_error_never_quotes_the_values_it_was_given(opened: Opened) -> None:
    """What a failed statement says may be logged (a 503, a failed store): the values it
    carried (a password hash, a message's text) are not in it."""
    broken = statements.INSERT_MESSAGE.values(room="lobby", user_id=999_999)
    with pytest.raises(sqlalchemy.exc.DBAPIError) as failed:  # no such user: foreign key
        async with opened.engine.begin() as connection:
            await connection.execute(broken, {"author": "eve", "text": "a secret text"})
    assert "INSERT INTO messages" in str(failed.value)
    assert "a secret text" not in str(failed.value)


async def test_an_in_memory_database_goes_through_the_engine() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    opened = await open_store(engine)
    assert isinstance(opened, EngineStore)
    await opened.close()
    await engine.dispose()


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'roomchat.db'}")
    await migrate(engine)
    await engine.dispose()
    opened = await SQLiteStore.open(str(tmp_path / "roomchat.db"))
    await opened.create_user(username="Alice", password_hash="hash-a")
    yield opened
    await opened.close()


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_the_wal_stays_bounded_under_steady_writes(fast: SQLiteStore, tmp_path: Path) -> None:
    # 3,000 one-message transactions are ~7,500 WAL pages (30 MB) when the WAL never
    # starts again (as with only passive checkpoints from another connection), 16 MiB with
    # only the committing thread's safety-net checkpoints; at a steady 2,000/s (gaps
    # between commits, as a server has) the checkpointer keeps it near 1 MiB. History reads
    # through SQLAlchemy in between must not keep it from starting again.
    path = tmp_path / "roomchat.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    reader = EngineStore(engine)
    checkpointer = fast.checkpointer
    loop = asyncio.get_running_loop()
    start = loop.time()
    largest = 0
    for n in range(3000):
        await fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
        largest = max(largest, wal_bytes(path))
        if n % 200 == 0:
            assert len(await read_back(reader, "lobby")) == min(n + 1, 100)
        await asyncio.sleep(start + n / 2000 - loop.time())  # the pace, not a wait for it
    await engine.dispose()
    assert largest < 8 * 2**20
    assert checkpointer.passes > 0
    assert checkpointer.failures == 0


async def test_closing_the_store_stops_its_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "roomchat.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    fast = await SQLiteStore.open(str(path))
    checkpointer = fast.checkpointer
    assert checkpointer.running
    await fast.create_user(username="Alice", password_hash="hash-a")
    await fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    await fast.close()  # while the checkpointer waits for commits to gather, or copies
    assert not checkpointer.running
    assert checkpointer.failures == 0
    assert wal_bytes(path) == 0  # the last connection to close checkpointed and removed it


async def test_a_failed_checkpoint_is_logged_and_counted(
    fast: SQLiteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_self: Checkpointer, _db: sqlite3.Connection) -> int:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Checkpointer, "_copy", broken)
    failed = threading.Event()
    fast.checkpointer.on_error = failed.set
    await fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    assert await asyncio.to_thread(failed.wait, 10.0)
    assert "SQLite checkpoint" in caplog.text
    # Writing goes on; the checkpointer stays up for the next round.
    await fast.add_messages_to_rooms(drafts={"lobby": [store.Draft(1, "Alice", "hi")]})
    assert fast.checkpointer.running
