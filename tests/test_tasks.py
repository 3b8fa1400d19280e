"""Background tasks fail loudly (``realtime.tasks.spawn``): logged with the traceback, counted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from roomchat.realtime.tasks import spawn


async def test_a_task_that_fails_is_logged_with_its_traceback_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[None] = []

    async def broken() -> None:
        raise RuntimeError("nobody awaits me")

    with caplog.at_level(logging.ERROR):
        task = spawn(broken(), name="roomchat-test", on_failure=lambda: failures.append(None))
        await asyncio.gather(task, return_exceptions=True)  # its report ran first
    assert failures == [None]
    record = next(r for r in caplog.records if "roomchat-test" in r.getMessage())
    assert record.exc_info is not None
    assert "nobody awaits me" in str(record.exc_info[1])


async def test_a_task_that_ends_or_is_cancelled_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[None] = []
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await asyncio.Event().wait()

    async def ends() -> int:
        return 1

    with caplog.at_level(logging.ERROR):
        cancelled = spawn(waits(), name="roomchat-waits", on_failure=lambda: failures.append(None))
        finished = spawn(ends(), name="roomchat-ends", on_failure=lambda: failures.append(None))
        await started.wait()
        cancelled.cancel()
        await asyncio.gather(cancelled, finished, return_exceptions=True)
    assert finished.result() == 1
    assert failures == []
    assert not [r for r in caplog.records if r.name == "roomchat.realtime.tasks"]
