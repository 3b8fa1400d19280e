"""The developer's own ``ROOMCHAT_*`` settings do not leak into the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import os
from roomchat.config import Settings


def test_probe():
    settings = Settings(_env_file=None)
    assert settings.redis_url is None, settings.redis_url
    assert settings.history_limit == 50
    assert "ROOMCHAT_HISTORY_LIMIT" not in os.environ
    assert os.environ["ROOMCHAT_TEST_REDIS_URL"] == "redis://switch.invalid:1/0"
"""


def test_a_shell_setting_reaches_neither_the_tests_nor_their_servers(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {
        **os.environ,
        "ROOMCHAT_REDIS_URL": "redis://developer.invalid:6379/0",
        "ROOMCHAT_HISTORY_LIMIT": "7",
        "ROOMCHAT_TEST_REDIS_URL": "redis://switch.invalid:1/0",  # a test switch: kept
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_probe.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
