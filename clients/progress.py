"""A small terminal progress line for long runs (no dependency; stays quiet when not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``frame 120/500  24.0 %  98.3 fps  ETA 3.9 s`` rewritten in place at most ``hz`` times a second."""

    def __init__(
        self,
        total: int | None,
        label: str = "frame",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        hz: float = 5.0,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._interval = 1.0 / hz
        self._start = time.monotonic()
        self._last = 0.0
        self.count = 0

    def update(self, count: int, note: str = "") -> None:
        self.count = count
        now = time.monotonic()
        if self.enabled and now - self._last >= self._interval:
            self._last = now
            self.stream.write("\r" + self.line(note) + "\033[K")
            self.stream.flush()

    def rate(self) -> float:
        """Items per second since the start."""
        elapsed = time.monotonic() - self._start
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self, note: str = "") -> str:
        rate = self.rate()
        if self.total:
            pct = 100.0 * self.count / self.total
            eta = (self.total - self.count) / rate if rate > 0 else float("inf")
            text = f"{self.label} {self.count}/{self.total}  {pct:5.1f} %  {rate:6.1f} fps  ETA {eta:.1f} s"
        else:
            text = f"{self.label} {self.count}  {rate:6.1f} fps"
        return f"{text}  {note}" if note else text

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()
