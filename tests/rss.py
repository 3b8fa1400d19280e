"""The peak resident memory of this process (where ``LiveServer`` runs) during a block."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

SAMPLE_SECONDS = 0.005
MIB = 1024 * 1024


class PeakRSS:
    """Samples RSS in a thread while the block runs: a freed buffer still shows in the peak.

    ``growth`` is the peak above the RSS at the start, in bytes.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self.start = self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._record()

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._record()

    def _record(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)
