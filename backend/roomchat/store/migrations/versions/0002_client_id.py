"""Messages gain their sender's client key (exactly-once sends), found by room and key.

The index is partial (keyed messages only): every version-1 message has no key, so it
starts empty, and an unkeyed insert maintains no more indexes than before.

Revision ID: 0002_client_id
Revises: 0001_initial
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_client_id"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

KEYED = sa.text("client_id IS NOT NULL")


def upgrade() -> None:
    # A nullable column with no default: PostgreSQL and SQLite add it without rewriting
    # the table.
    op.add_column("messages", sa.Column("client_id", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_messages_client_id",
        "messages",
        ["room", "client_id", "created_at"],
        sqlite_where=KEYED,
        postgresql_where=KEYED,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_client_id", table_name="messages")
    op.drop_column("messages", "client_id")  # SQLite has ALTER TABLE DROP COLUMN since 3.35
