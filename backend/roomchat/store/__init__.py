"""Persistence: the schema, its migrations, and the queries on it."""

from roomchat.store.queries import *  # noqa: F403
from roomchat.store.queries import __all__  # noqa: F401
