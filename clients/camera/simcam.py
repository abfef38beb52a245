"""The simulated LPTEM camera: streams the simulator (lptem.engine.sim) over wire protocol v1 at a frame
rate, exactly as a camera's acquisition software would, or writes a movie with its ground truth (the
files are listed in sim_cli.py, the ``lptem sim`` command)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from lptem.clients.camera.sim_microscope import SimMicroscopeServer
from lptem.clients.progress import Progress
from lptem.clients.wire.sender import FrameSender
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.simulator import SimFrame, Simulator

log = logging.getLogger("lptem.sim")


def motion_from_physical(
    model: str, diffusion_nm2_per_s: float, alpha: float, pixel_size_nm: float, fps: float, **extra: Any
) -> Motion:
    """A Motion in px/frame whose MSD is 4 D t^α with D in nm²/s^α.

    In frames D becomes D' = D Δt^α / p² (px²/frame^α); brownian and fbm then take the per-axis step
    s.d. σ = sqrt(2 D'), ctrw (waits of at least t0 frames) σ = sqrt(2 D' t0^α Γ(1-α) Γ(1+α)).
    """
    d_frames = diffusion_nm2_per_s * (1 / fps) ** alpha / pixel_size_nm**2
    sigma2 = 2 * d_frames
    if model == "ctrw" and 0 < alpha < 1:
        t0 = float(extra.get("ctrw_t0_frames", 1.0))
        sigma2 *= t0**alpha * math.gamma(1 - alpha) * math.gamma(1 + alpha)
    return Motion(model, sigma_px=math.sqrt(sigma2), alpha=alpha, **extra)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StreamSummary:
    frames: int
    elapsed_s: float
    late_frames: int


class SimulatedCamera:
    """A Simulator behind a FrameSender, paced by an absolute frame clock (``fps=None``: as fast as
    the daemon accepts frames, which is lossless against ``--policy queue``).

    Each frame's ``t_ns`` is its simulated acquisition time: the wall clock at the start plus the
    simulator's ``t_s``, as a real camera stamps exposures. Frame times measured from the stamps
    (the daemon's MSD in seconds) then match the simulated physics even when sending falls behind;
    a late frame shows as camera→daemon latency, and unpaced (``fps=None``) stamps run at the
    simulated rate, not the sending rate, so their latencies mean nothing."""

    def __init__(
        self,
        simulator: Simulator,
        sender: FrameSender,
        fps: float | None,
        control: SimMicroscopeServer | None = None,
    ) -> None:
        """``control``: the simulated microscope's control socket, served between frames."""
        self.simulator = simulator
        self.sender = sender
        self.fps = fps
        self.control = control

    def run(
        self,
        n_frames: int | None,
        stop: threading.Event,
        *,
        on_frame: Callable[[SimFrame], None] | None = None,
        progress: Progress | None = None,
    ) -> StreamSummary:
        """Send frames until ``n_frames`` (None: until ``stop``). ``on_frame`` sees each frame and its
        ground truth right after it was sent."""
        self.sender.start(simulator=self.simulator.metadata())
        t0, start_ns, sent, late = time.perf_counter(), time.time_ns(), 0, 0
        period = 1.0 / self.fps if self.fps else 0.0
        while not stop.is_set() and (n_frames is None or sent < n_frames):
            if self.control is not None:
                self.control.serve()  # changes apply to the frame about to be simulated
            frame = self.simulator.next(want_labels=False)
            wait = t0 + sent * period - time.perf_counter()
            if wait > 0:
                self._idle(wait)
            elif period and wait < -period:
                late += 1
            self.sender.send(frame.image, t_ns=start_ns + round(frame.t_s * 1e9))
            sent += 1
            if on_frame is not None:
                on_frame(frame)
            if progress is not None:
                progress.update(sent)
        self.sender.end()
        return StreamSummary(sent, time.perf_counter() - t0, late)

    def _idle(self, seconds: float) -> None:
        """Wait until the next frame is due, answering control requests meanwhile."""
        if self.control is None:
            time.sleep(seconds)
            return
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            self.control.serve(left)


def write_movie(
    simulator: Simulator,
    directory: Path,
    n_frames: int,
    *,
    labels: bool = False,
    progress: Progress | None = None,
) -> None:
    """Write ``n_frames`` frames, their ground truth and the parameters to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rows: list[pd.DataFrame] = []
    with contextlib.ExitStack() as files:
        movie = files.enter_context(tifffile.TiffWriter(directory / "movie.tif", bigtiff=True))
        label_file = None
        if labels:
            label_file = files.enter_context(tifffile.TiffWriter(directory / "labels.tif", bigtiff=True))
        for i in range(n_frames):
            frame = simulator.next(want_labels=labels)
            movie.write(frame.image, contiguous=True)
            if label_file is not None and frame.truth.labels is not None:
                label_file.write(frame.truth.labels, compression="zlib")
            rows.append(truth_table(frame))
            if progress is not None:
                progress.update(i + 1)
    pd.concat(rows, ignore_index=True).to_parquet(directory / "truth.parquet")
    (directory / "sim.json").write_text(json.dumps(simulator.metadata(), indent=1))


def truth_table(frame: SimFrame) -> pd.DataFrame:
    t = frame.truth
    n = len(t.x)
    return pd.DataFrame(
        {
            "frame": np.full(n, frame.index),
            "t_s": np.full(n, frame.t_s),
            "particle": np.arange(n),
            "x": t.x,
            "y": t.y,
            "theta_deg": t.theta_deg,
            "area_px": t.area_px,
            "visible": t.visible,
            "inside_fraction": t.inside_fraction,
            "x_unwrapped": t.unwrapped[:, 0],
            "y_unwrapped": t.unwrapped[:, 1],
        }
    )


# ------------------------------------------------------------------------------------------ command line
