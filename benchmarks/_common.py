"""Shared helpers for the benchmark scripts: a paced camera process, percentiles, the machine's name."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


def machine() -> str:
    """CPU model, cores available to us, OS and Python: printed with every figure."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{model}, {cores} cores, {system}"


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a latency sample, ms."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        if not seconds:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan)
        ms = np.asarray(seconds) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(p50), float(p90), float(p99), float(ms.max()))

    def row(self, label: str) -> str:
        figures = (self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms)
        return f"{label:<34} {self.n:>7} " + " ".join(f"{v:>8.3f}" for v in figures)


TABLE_HEADER = f"{'':<34} {'n':>7} {'p50/ms':>8} {'p90/ms':>8} {'p99/ms':>8} {'max/ms':>8}"


@dataclass(frozen=True, slots=True)
class CameraJob:
    """PUSH ``n_frames`` frames to ``endpoint`` at ``fps`` (None: as fast as the daemon accepts them).

    ``source`` is a .npy movie (frames are cycled) or a shape for uniform-noise uint16 frames.
    """

    endpoint: str
    source: str | tuple[int, int]
    fps: float | None
    n_frames: int
    keys: tuple[str, str] | None = None
    """CURVE: the camera's secret key file and the daemon's public key file."""
    shm_slots: int = 0
    """Pixels through a shared-memory ring of this many slots (0: over the socket)."""


def paced_camera(job: CameraJob, ready: Any, go: Any) -> None:
    """Process body: run ``job`` on an absolute schedule with the project's FrameSender (which copies,
    as acquisition software with a reused buffer would)."""
    endpoint, source, fps, n_frames = job.endpoint, job.source, job.fps, job.n_frames
    from lptem.clients.wire.sender import FrameSender  # noqa: PLC0415 - imported in the child process
    from lptem.service.protocol.curve import ClientKeys  # noqa: PLC0415

    keys = None if job.keys is None else ClientKeys.load(Path(job.keys[0]), Path(job.keys[1]))

    if isinstance(source, str):
        movie = np.load(source)
        frames = [movie[i] for i in range(len(movie))]
    else:
        rng = np.random.default_rng(0)
        frames = [rng.integers(900, 1100, size=source).astype(np.uint16) for _ in range(4)]
    with FrameSender(endpoint, keys=keys, shm_slots=job.shm_slots) as camera:
        ready.set()
        go.wait()
        t0 = time.perf_counter()
        for i in range(n_frames):
            if fps is not None:
                wait = t0 + i / fps - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            camera.send(frames[i % len(frames)])


def start_camera(
    endpoint: str,
    source: str | tuple[int, int],
    fps: float | None,
    n_frames: int,
    keys: tuple[str, str] | None = None,
    *,
    shm_slots: int = 0,
) -> tuple[mp.process.BaseProcess, Any]:
    """Start a camera in its own process (spawned: no shared GIL); returns (process, go event)."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    job = CameraJob(endpoint, source, fps, n_frames, keys, shm_slots)
    process = ctx.Process(target=paced_camera, args=(job, ready, go))
    process.start()
    ready.wait(60)
    return process, go


def dump_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=1, default=asdict))
        print(f"wrote {path}")
