"""Building an app changes nothing outside it: the garbage collector and logging are the
process's. Only the app that owns the process (``roomchat.main:app``) tunes them, and
only while its lifespan runs."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from roomchat.main import create_app
from roomchat.ops.logs import REDACTED_LOGGERS, RedactTokens
from roomchat.server.tuning import YOUNG_THRESHOLD, settled_garbage_collector
from tests.conftest import make_settings

#: Prints the process's GC and logging state, then again after importing roomchat.main
#: and building an app: a fresh interpreter, since this one imported roomchat long ago.
PROBE = """
import gc, json, logging, sys

def state():
    loggers = {name or "root": logging.getLogger(name) for name in sys.argv[1:]}
    return {
        "freeze_count": gc.get_freeze_count(),
        "threshold": gc.get_threshold(),
        "gc_enabled": gc.isenabled(),
        "loggers": {
            name: {
                "filters": [repr(f) for f in logger.filters],
                "handlers": [repr(h) for h in logger.handlers],
                "handler_filters": [repr(f) for h in logger.handlers for f in h.filters],
                "level": logger.level,
            }
            for name, logger in loggers.items()
        },
    }

before = state()
import roomchat.main
roomchat.main.create_app()
print(json.dumps({"before": before, "after": state()}))
"""


def test_importing_main_and_building_an_app_change_nothing_process_wide(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *REDACTED_LOGGERS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    states = json.loads(result.stdout)
    assert states["before"]["freeze_count"] == 0  # the probe saw a fresh interpreter
    assert states["after"] == states["before"]


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The test's app installs redaction for good (as a server's does): undo it after."""
    loggers = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    saved = [list(logger.filters) for logger in loggers]
    yield
    for logger, filters in zip(loggers, saved, strict=True):
        logger.filters[:] = filters


@pytest.mark.usefixtures("logging_restored")
async def test_the_app_that_owns_the_process_tunes_it_while_it_runs(tmp_path: Path) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    app = create_app(make_settings(tmp_path), owns_process=True)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    async with LifespanManager(app):
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen
        root_filters = logging.getLogger().filters
        assert any(isinstance(f, RedactTokens) for f in root_filters)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)


async def test_an_app_that_does_not_own_the_process_leaves_it_alone(tmp_path: Path) -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    filters = [list(logging.getLogger(name).filters) for name in REDACTED_LOGGERS]
    async with LifespanManager(create_app(make_settings(tmp_path))):
        assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
        assert [logging.getLogger(name).filters for name in REDACTED_LOGGERS] == filters


def test_the_collector_is_settled_once_and_restored_when_the_last_server_stops() -> None:
    threshold, unfrozen = gc.get_threshold(), gc.get_freeze_count()
    with settled_garbage_collector():
        frozen = gc.get_freeze_count()
        young = [[] for _ in range(100)]  # what a second freeze would move out of view
        with settled_garbage_collector():
            assert gc.get_freeze_count() <= frozen  # not frozen a second time
        assert gc.is_tracked(young[0])
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the first still runs
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, unfrozen)
