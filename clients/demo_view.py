"""The demo's live terminal view: frames, rate, latency, and per particle its position and D so far."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import TextIO

import numpy as np

from clients.subscriber import Received
from engine.msd import fit_power_law, msd, positions_by_frame
from service.protocol import TrackMessage

_HISTORY = 500  # frames of each particle kept for the running D estimate


class LiveView:
    """Fed by ``on_track`` (subscriber thread) and ``sent`` (camera thread); ``run`` redraws it."""

    def __init__(self, pixel_size_nm: float, frame_time_s: float, stream: TextIO | None = None) -> None:
        self.pixel_size_nm = pixel_size_nm
        self.frame_time_s = frame_time_s
        self.stream = stream or sys.stdout
        self.latencies_s: list[float] = []
        self.frames_received = 0
        self.frames_sent = 0
        self._history: dict[int, deque[tuple[int, float, float]]] = {}
        self._last: TrackMessage | None = None
        self._lock = threading.Lock()
        self._drawn = 0
        self._start = time.monotonic()
        self._tty = self.stream.isatty()

    def on_track(self, received: Received) -> None:
        track: TrackMessage = received.message
        with self._lock:
            self.latencies_s.append(received.latency().total_s)
            self.frames_received += 1
            self._last = track
            for o in track.objects:
                if o.visible:
                    self._history.setdefault(o.id, deque(maxlen=_HISTORY)).append((track.frame, o.x, o.y))

    def sent(self) -> None:
        self.frames_sent += 1

    def run(self, stop: threading.Event, total: int) -> None:
        interval = 0.5 if self._tty else 5.0
        while not stop.wait(interval):
            self.draw(total)
        self.draw(total)

    def lines(self, total: int) -> list[str]:
        with self._lock:
            latencies = np.array(self.latencies_s[-200:]) * 1e3
            last = self._last
            history = {k: list(v) for k, v in self._history.items()}
            received = self.frames_received
        elapsed = time.monotonic() - self._start
        p50 = f"{np.median(latencies):.1f} ms" if latencies.size else "-"
        lines = [
            f"sent {self.frames_sent}/{total}  processed {received}  {received / elapsed:5.1f} fps"
            f"  latency p50 {p50}"
        ]
        if last is not None:
            for o in last.objects:
                d = self._running_diffusion(history.get(o.id, []))
                where = f"x {o.x * self.pixel_size_nm:8.1f} nm  y {o.y * self.pixel_size_nm:8.1f} nm"
                state = "visible" if o.visible else "lost   "
                lines.append(f"  particle {o.id:>3}  {where}  {state}  D {d}")
        return lines

    def _running_diffusion(self, points: list[tuple[int, float, float]]) -> str:
        if len(points) < 20:
            return "-"
        frames = [p[0] for p in points]
        xy = np.array([(p[1], p[2]) for p in points]) * self.pixel_size_nm
        fit = fit_power_law(msd(positions_by_frame(frames, xy)[1], 10), self.frame_time_s)
        return f"{fit.diffusion:7.1f} nm²/s" if fit.ok else "-"

    def draw(self, total: int) -> None:
        lines = self.lines(total)
        if self._tty:
            up = f"\033[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"\033[K{line}\n" for line in lines))
            self._drawn = len(lines)
        else:
            self.stream.write(lines[0] + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
