"""``StoreGate``: hold every message commit of a server running in this process until the
test opens the gate, and see what the sessions handed to the writer meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from roomchat import store
from roomchat.realtime.writer import MessageWriter
from roomchat.store.queries import Queries
from tests.wsclient import TIMEOUT


class StoreGate:
    """Every message commit waits until ``open()``; ``submitted`` lists the texts the
    sessions handed to the writer, in order, and ``stored_at`` is when the latest commit
    ended (the server runs in a thread of its own)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._submitted: list[str] = []
        self.stored_at: float | None = None
        gate = self
        real_add = Queries.add_messages_to_rooms  # both stores' one group commit

        async def held(
            self: Any, *, drafts: Mapping[str, Sequence[store.Draft]], wait: float | None = None
        ) -> dict[str, store.StoredBatch]:
            await asyncio.to_thread(gate._opened.wait, TIMEOUT)
            stored = await real_add(self, drafts=drafts, wait=wait)
            gate.stored_at = time.monotonic()
            return stored

        real_submit = MessageWriter.submit

        def counted(writer: MessageWriter, room: str, draft: store.Draft) -> Any:
            with gate._lock:
                gate._submitted.append(draft.text)
            return real_submit(writer, room, draft)

        monkeypatch.setattr(Queries, "add_messages_to_rooms", held)
        monkeypatch.setattr(MessageWriter, "submit", counted)

    @property
    def submitted(self) -> list[str]:
        with self._lock:
            return list(self._submitted)

    def open(self) -> None:
        self._opened.set()
