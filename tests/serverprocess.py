"""``roomchat serve`` as a real subprocess, for tests that read its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port

START_TIMEOUT = 30.0


class ServerProcess:
    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int = 1,
        cwd: Path | None = None,
        plain_uvicorn: bool = False,
    ) -> None:
        """``roomchat serve``, or with ``plain_uvicorn`` ``uvicorn roomchat.main:app``
        (uvicorn's own protocols and logging)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        if plain_uvicorn:
            command = [sys.executable, "-m", "uvicorn", "roomchat.main:app"]
        else:
            command = [sys.executable, "-m", "roomchat", "serve"]
        command += ["--port", str(self.port), "--workers", str(workers)]
        self._process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def pid(self) -> int:
        """The server's process (with one worker, the one that serves): to signal it."""
        return self._process.pid

    def wait_ready(self) -> None:
        """Poll /healthz until it answers, within START_TIMEOUT."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.stop()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.stop()}")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it reads nothing, as in a long pause of its own."""
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT; nothing if it was not paused)."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> str:
        """Stop the server (as Ctrl-C does) and return everything it printed."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            output, _ = self._process.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            output, _ = self._process.communicate()
        return output
