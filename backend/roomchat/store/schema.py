"""SQLAlchemy tables: users and messages."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC datetimes; SQLite hands them back naive, so mark them UTC again."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Usernames are unique regardless of case: "Alice" and "alice" are one account.
Index("ix_users_username_lower", func.lower(User.username), unique=True)


#: 64-bit ids (a busy PostgreSQL passes 2**31 messages); SQLite's INTEGER already is, and
#: only "INTEGER PRIMARY KEY" is its auto-incrementing rowid.
MessageId = BigInteger().with_variant(Integer(), "sqlite")
MAX_MESSAGE_ID = 2**63 - 1


#: Only keyed messages are in it, so an unkeyed insert costs no more than before the key.
_KEYED = sql_text("client_id IS NOT NULL")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_room_id", "room", "id"),
        # A room's keyed messages, by key then time: statements.KEYED_SINCE.
        Index(
            "ix_messages_client_id",
            "room",
            "client_id",
            "created_at",
            sqlite_where=_KEYED,
            postgresql_where=_KEYED,
        ),
    )

    id: Mapped[int] = mapped_column(MessageId, primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The sender's key for exactly-once sends (API.md), or None.
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
