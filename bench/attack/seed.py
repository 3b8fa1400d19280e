"""The database every run starts from: the probe's users, the victim, and one big room.

Built once per invocation straight into a SQLite file (as ``bench.servers.seed_users``
does, one argon2 hash shared by all), then copied for each run, so the quiet run and
the attacked one start from the same bytes. The big room is what a ``since=0`` replay
sends: issue 12 measured 20,000 messages of 4,000 characters (an 82 MB frame).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.servers import seed_users

BATCH = 1000


async def _seed(database: Path, users: list[str], room: str, messages: int, chars: int) -> None:
    from sqlalchemy import insert, select

    from roomchat.store.engine import create_engine
    from roomchat.store.schema import Message, User

    await seed_users(database, users)
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.begin() as connection:
            author_id = (
                await connection.execute(select(User.id).where(User.username == users[0]))
            ).scalar_one()
            for first in range(0, messages, BATCH):
                rows = [
                    {
                        "room": room,
                        "user_id": author_id,
                        "author": users[0],
                        "text": (f"old message {n} " + "z" * chars)[:chars],
                    }
                    for n in range(first, min(messages, first + BATCH))
                ]
                await connection.execute(insert(Message), rows)
    finally:
        await engine.dispose()


async def build(database: Path, *, users: list[str], room: str, messages: int, chars: int) -> None:
    """Create ``database`` with ``users`` and ``messages`` texts of ``chars`` in ``room``."""
    await _seed(database, users, room, messages, chars)


def copy(template: Path, database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, database)
