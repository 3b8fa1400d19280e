"""Checkpoints of the SQLite store's WAL, on a thread and connection of their own.

``SQLiteStore`` (sqlite.py) starts a ``Checkpointer`` beside its own thread; why, and how
it keeps the WAL short without stalling commits, is on the class.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, cast

from roomchat.store.engine import SQLITE_BUSY_TIMEOUT

log = logging.getLogger(__name__)

#: While messages are being written, the checkpointer copies the WAL into the database
#: once per this many seconds, off the committing thread (see ``Checkpointer``), or
#: sooner, after this many commits.
CHECKPOINT_PAUSE = 0.05
CHECKPOINT_COMMITS = 200
#: Checkpoints the checkpointer tries in a row before it gives up waiting for a gap.
PASSES = 5
#: WAL frames (pages) beyond which, when no checkpoint of its own found a gap between two
#: commits, the checkpointer has the committing thread finish the copy (``Checkpointer``).
CATCH_UP_FRAMES = 1024
#: The store's own connection: the WAL file is cut back to this many bytes when it
#: restarts after a burst; and the committing thread checkpoints by itself only when the
#: WAL is this many pages long (a safety net: the checkpointer keeps it far shorter).
WAL_SIZE_LIMIT = 4 * 2**20
SAFETY_CHECKPOINT_FRAMES = 4 * CATCH_UP_FRAMES


class Checkpointer:
    """Copies the WAL into the database on its own thread and connection.

    Left to itself, SQLite checkpoints in the committing thread, in the commit that takes
    the WAL past 1,000 pages (``wal_autocheckpoint``): that commit syncs the WAL (4 MB
    written since the last checkpoint, as synchronous=NORMAL syncs nothing at commit),
    copies its pages into the database and syncs that: 3-7 ms, one commit in 300-450, in
    which every message waits. Here, while messages are written, a PASSIVE checkpoint runs
    every ``CHECKPOINT_PAUSE`` seconds (or ``CHECKPOINT_COMMITS`` commits) on this thread
    (sqlite3 lets go of the GIL), and takes no lock a writer waits for.

    A WAL only starts again from its beginning when a writer begins a transaction after
    a checkpoint has copied *every* frame and no reader still reads old ones; else it grows
    without end. So a checkpoint that did not catch up (a commit came in meanwhile) is
    followed at once by another, which has only a few frames to copy, until one finds
    nothing new: then the next transaction restarts the WAL. When commits come with no gap
    long enough (``PASSES`` in a row) and the WAL is past ``CATCH_UP_FRAMES``, the store's
    own thread copies the few frames left between two transactions with a RESTART
    checkpoint: a short stall, only under overload. (A RESTART checkpoint from this
    thread's connection waits out its busy timeout against the store's thread, which
    holds a read lock while it waits for the write lock in BEGIN: 5-9 ms stalls.)
    A reader holding an old snapshot still keeps the WAL from restarting until it ends.
    """

    def __init__(self, path: str, catch_up: Callable[[], object]) -> None:
        self._path = path
        self._catch_up = catch_up
        self._wrote = threading.Event()
        self._hurry = threading.Event()
        self._commits = 0  # since the last checkpoint, about (both threads reset or add)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name="roomchat-sqlite-checkpoint", daemon=True
        )
        #: Called (on the checkpointer's thread) when a checkpoint fails: for a metric.
        self.on_error: Callable[[], None] | None = None
        #: Counts, for tests and the bench: checkpoints run, catch-ups, failures.
        self.passes = 0
        self.catch_ups = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """A transaction was committed (called on the event loop: cheap)."""
        self._commits += 1
        if not self._wrote.is_set():
            self._wrote.set()
        elif self._commits >= CHECKPOINT_COMMITS and not self._hurry.is_set():
            self._hurry.set()

    def stop(self) -> None:
        """Stop the thread and wait for it (blocks: not on the event loop)."""
        self._stopping.set()
        self._wrote.set()
        self._hurry.set()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=1.0, isolation_level=None)
        except sqlite3.Error:
            log.warning("SQLite checkpointer could not connect to %s", self._path, exc_info=True)
            self._failed()
            return
        try:
            while not self._stopping.is_set():
                self._wrote.wait()
                # Let commits gather: one checkpoint per pause while messages come in.
                self._hurry.wait(CHECKPOINT_PAUSE)
                if self._stopping.is_set():
                    break
                self._wrote.clear()
                self._hurry.clear()
                self._commits = 0
                try:
                    self._checkpoint(db)
                except Exception:  # logged and counted; the next round tries again
                    log.warning("SQLite checkpoint of %s failed", self._path, exc_info=True)
                    self._failed()
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        if self._copy(db) >= CATCH_UP_FRAMES and not self._stopping.is_set():
            # Commits come with no gap long enough for a pass: let the committing thread
            # copy the few frames left itself, between two of its transactions.
            self.catch_ups += 1
            self._catch_up()

    def _copy(self, db: sqlite3.Connection) -> int:
        """PASSIVE checkpoints until the WAL is to restart: the WAL's length last seen."""
        before = frames = -1
        for _ in range(PASSES):
            self.passes += 1
            ((busy, frames, copied),) = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if busy or frames < before:  # another one is checkpointing; the WAL restarted
                break
            if frames == copied == before:
                # All copied, and nothing came in since the last pass began (a checkpoint
                # reports the length the WAL had when it began): the next transaction
                # should start the WAL again. Wait for one, and see.
                self._wrote.clear()
                if not self._wrote.wait(CHECKPOINT_PAUSE) or self._stopping.is_set():
                    break
            before = frames
        return int(frames)

    def _failed(self) -> None:
        self.failures += 1
        if self.on_error is not None:
            self.on_error()


def restart_wal(db: sqlite3.Connection) -> tuple[Any, ...]:
    """Copy what is left of the WAL, between two of the store's transactions (on the
    store's thread), so that the next one starts the WAL again: waits for readers of old
    frames 10 ms at most."""
    db.execute("PRAGMA busy_timeout=10")
    try:
        return cast(tuple[Any, ...], db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()[0])
    finally:
        db.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
