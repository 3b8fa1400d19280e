"""Background tasks that fail loudly: nobody awaits them, so nobody else would hear."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def spawn(
    coroutine: Coroutine[Any, Any, T],
    *,
    name: str,
    on_failure: Callable[[], object] | None = None,
) -> asyncio.Task[T]:
    """Start ``coroutine`` as a task; an exception it ends with (not a cancellation) is
    logged with its traceback, and ``on_failure`` (a metric's ``inc``, say) is called.

    The caller keeps the task (the loop holds only a weak reference to it)."""
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(lambda done: _report(done, on_failure))
    return task


def _report(task: asyncio.Task[Any], on_failure: Callable[[], object] | None) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    log.error("background task %s failed", task.get_name(), exc_info=error)
    if on_failure is not None:
        on_failure()
