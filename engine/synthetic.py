"""Synthetic blob movies with exact ground truth, for plumbing tests, the demo and benchmarks.

Dark anti-aliased discs on a flat background with Gaussian noise: deliberately simple, so that a test
failing on them points at the pipeline, not at the physics (the LPTEM image-formation simulator is a
separate module). Positions follow skimage/trackpy coordinates: x = column, y = row, px.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lptem.engine.api import Box


@dataclass(frozen=True, slots=True)
class BlobMovieConfig:
    shape: tuple[int, int] = (1024, 1024)
    """(rows, cols) px."""
    n_blobs: int = 3
    radius_px: float = 8.0
    background: float = 1000.0
    """Mean background level, counts."""
    contrast: float = 400.0
    """Depth of a blob below the background, counts."""
    noise_sigma: float = 40.0
    """Gaussian noise s.d., counts per pixel."""
    motion: Literal["orbit", "brownian"] = "orbit"
    """``orbit``: each blob circles its own centre (never collides); ``brownian``: random walk."""
    step_px: float = 1.5
    """Orbit: speed, px/frame. Brownian: per-axis step s.d., px/frame (reflected at the margins)."""
    dtype: Literal["uint8", "uint16", "float32"] = "uint16"
    seed: int = 0
    noise_fields: int = 4
    """Noise fields drawn once; each frame uses one, shifted by a random offset, so noise never repeats
    while rendering stays cheap for long movies."""


class BlobMovie:
    """A deterministic movie: ``frame(i)`` and ``positions[i]`` for i in 0..n_frames-1."""

    def __init__(self, config: BlobMovieConfig, n_frames: int) -> None:
        self.config = config
        self.n_frames = n_frames
        rng = np.random.default_rng(config.seed)
        self.positions = _trajectories(config, n_frames, rng)
        """Ground truth (n_frames, n_blobs, 2) as (x, y) px."""
        rows, cols = config.shape
        self._shifts = rng.integers(0, (rows, cols), size=(n_frames, 2))
        self._noise = [
            rng.normal(config.background, config.noise_sigma, size=(rows, cols)).astype(np.float32)
            for _ in range(config.noise_fields)
        ]

    def frame(self, i: int) -> npt.NDArray[np.generic]:
        dy, dx = self._shifts[i]
        image = np.roll(self._noise[i % len(self._noise)], (int(dy), int(dx)), axis=(0, 1))
        for x, y in self.positions[i]:
            _stamp_disc(image, x, y, self.config.radius_px, -self.config.contrast)
        return _to_dtype(image, self.config.dtype)

    def frames(self) -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
        for i in range(self.n_frames):
            yield i, self.frame(i)

    def box(self, i: int, blob: int, margin_px: float = 4.0) -> Box:
        """A prompt box around blob ``blob`` in frame ``i``."""
        x, y = self.positions[i, blob]
        r = self.config.radius_px + margin_px
        return Box(x - r, y - r, x + r, y + r)


def _trajectories(
    config: BlobMovieConfig, n_frames: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    rows, cols = config.shape
    margin = 3 * config.radius_px
    if config.motion == "orbit":
        return _orbits(config, n_frames, rng)
    start = _separated_points(
        config.n_blobs, (margin, cols - margin), (margin, rows - margin), 6 * config.radius_px, rng
    )
    steps = rng.normal(0.0, config.step_px, size=(n_frames - 1, config.n_blobs, 2))
    walk = np.concatenate([start[None], start[None] + np.cumsum(steps, axis=0)])
    lo = np.array([margin, margin])
    hi = np.array([cols - margin, rows - margin])
    return _reflect(walk, lo, hi)


def _separated_points(
    n: int, xs: tuple[float, float], ys: tuple[float, float], min_distance: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Uniform random points at least ``min_distance`` apart (rejection sampling)."""
    points: list[tuple[float, float]] = []
    for _ in range(1000 * n):
        if len(points) == n:
            break
        p = (rng.uniform(*xs), rng.uniform(*ys))
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) >= min_distance for q in points):
            points.append(p)
    if len(points) < n:
        raise ValueError(f"cannot place {n} particles {min_distance:g} px apart in this frame")
    return np.array(points)


def _orbits(config: BlobMovieConfig, n_frames: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Blobs circle centres on a grid; orbit radius is a third of the grid spacing, so paths never meet."""
    rows, cols = config.shape
    per_side = math.ceil(math.sqrt(config.n_blobs))
    spacing = min(rows, cols) / per_side
    orbit = spacing / 3 - config.radius_px
    if orbit <= 0:
        raise ValueError("frame too small for this many blobs of this radius")
    k = np.arange(config.n_blobs)
    centres = np.column_stack([(k % per_side + 0.5) * spacing, (k // per_side + 0.5) * spacing])
    phase = rng.uniform(0, 2 * np.pi, config.n_blobs)
    omega = config.step_px / orbit
    angle = phase[None, :] + omega * np.arange(n_frames)[:, None]
    return centres[None] + orbit * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _reflect(
    walk: npt.NDArray[np.float64], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    span = hi - lo
    folded = np.mod(walk - lo, 2 * span)
    return lo + np.where(folded > span, 2 * span - folded, folded)


def _stamp_disc(image: npt.NDArray[np.float32], x: float, y: float, radius: float, amplitude: float) -> None:
    """Add ``amplitude`` times the pixel coverage of a disc (anti-aliased edge one pixel wide)."""
    rows, cols = image.shape
    r0, r1 = max(0, int(y - radius - 2)), min(rows, int(y + radius + 3))
    c0, c1 = max(0, int(x - radius - 2)), min(cols, int(x + radius + 3))
    if r0 >= r1 or c0 >= c1:
        return
    yy, xx = np.mgrid[r0:r1, c0:c1]
    distance = np.hypot(xx - x, yy - y)
    coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    image[r0:r1, c0:c1] += (amplitude * coverage).astype(np.float32)


def _to_dtype(image: npt.NDArray[np.float32], dtype: str) -> npt.NDArray[np.generic]:
    if dtype == "float32":
        return image
    info = np.iinfo(dtype)
    return np.clip(np.rint(image), info.min, info.max).astype(dtype)
