"""Alembic migrations: ``make migrate`` (``roomchat migrate``) brings a database to head."""
