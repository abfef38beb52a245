"""The demo's live terminal view: frames, rate, latency, and per particle its position and its D and α
from the daemon's ``msd`` topic (the rolling MSD over the last 256 frames)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

import numpy as np

from lptem.clients.wire.subscriber import Received
from lptem.service.protocol import MsdMessage, ParticleMsd, TrackMessage


class LiveView:
    """Fed by ``on_track`` / ``on_msd`` (subscriber thread) and ``sent`` (camera thread); ``run`` redraws."""

    def __init__(self, pixel_size_nm: float, stream: TextIO | None = None) -> None:
        self.pixel_size_nm = pixel_size_nm
        self.stream = stream or sys.stdout
        self.latencies_s: list[float] = []
        self.frames_received = 0
        self.frames_sent = 0
        self._diffusion: dict[int, ParticleMsd] = {}
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

    def on_msd(self, received: Received) -> None:
        message: MsdMessage = received.message
        with self._lock:
            self._diffusion = {p.id: p for p in message.particles}

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
            diffusion = dict(self._diffusion)
            received = self.frames_received
        elapsed = time.monotonic() - self._start
        p50 = f"{np.median(latencies):.1f} ms" if latencies.size else "-"
        lines = [
            f"sent {self.frames_sent}/{total}  processed {received}  {received / elapsed:5.1f} fps"
            f"  latency p50 {p50}"
        ]
        if last is not None:
            for o in last.objects:
                d = _diffusion_text(diffusion.get(o.id))
                where = f"x {o.x * self.pixel_size_nm:8.1f} nm  y {o.y * self.pixel_size_nm:8.1f} nm"
                state = "visible" if o.visible else "lost   "
                lines.append(f"  particle {o.id:>3}  {where}  {state}  D {d}")
        return lines

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


def _diffusion_text(p: ParticleMsd | None) -> str:
    if p is None or p.D_nm2_per_s is None:
        return "-"
    return f"{p.D_nm2_per_s:7.1f} nm²/s^α  α {p.alpha:4.2f}"
