"""Persistence: one protocol per concern (users.py, messages.py), each query written once
(statements.py), run through SQLAlchemy's engine or SQLite's fast path; the schema and its
migrations beside them. ``open_store`` (open.py) chooses the store at startup."""

from roomchat.store.messages import CLIENT_ID_WINDOW, Draft, MessageStore, StoredBatch
from roomchat.store.runner import CommitOutcomeUnknownError, worth_retrying
from roomchat.store.schema import Message, User
from roomchat.store.users import UsernameTakenError, UserRef, UserStore

__all__ = [
    "CLIENT_ID_WINDOW",
    "CommitOutcomeUnknownError",
    "Draft",
    "Message",
    "MessageStore",
    "StoredBatch",
    "User",
    "UserRef",
    "UserStore",
    "UsernameTakenError",
    "worth_retrying",
]
