"""Mean squared displacement of trajectories, and the power-law fit MSD = 2 d D τ^α (d = 2 in images).

Conventions (as trackpy >= 0.7): positions are indexed by frame; a missing frame is a gap (NaN row);
the MSD at lag τ is the mean of |r(t + τ) - r(t)|² over all pairs whose ends are both present (the
time average over the trajectory); a lag without pairs is NaN, and the pair count is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MsdCurve:
    lags: npt.NDArray[np.int64]
    """Lags, frames."""
    msd: F64
    """Time-averaged MSD at each lag (length² in the positions' unit); NaN where no pair exists."""
    pairs: npt.NDArray[np.int64]
    """Number of displacement pairs behind each value."""


def positions_by_frame(frames: npt.ArrayLike, xy: npt.ArrayLike) -> tuple[int, F64]:
    """Scatter (frame, x, y) rows into a dense (n_frames, 2) array with NaN gaps; returns (first, array)."""
    f = np.asarray(frames, dtype=np.int64)
    points = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if f.size == 0:
        return 0, np.empty((0, 2))
    first = int(f.min())
    dense = np.full((int(f.max()) - first + 1, 2), np.nan)
    dense[f - first] = points
    return first, dense


def msd(positions: F64, max_lag: int) -> MsdCurve:
    """Time-averaged MSD of one trajectory ``positions`` (n_frames, dims) at lags 1..max_lag."""
    lags = np.arange(1, max_lag + 1)
    values = np.full(max_lag, np.nan)
    pairs = np.zeros(max_lag, dtype=np.int64)
    for k, lag in enumerate(lags):
        if lag >= len(positions):
            break
        d2 = np.sum((positions[lag:] - positions[:-lag]) ** 2, axis=1)
        ok = np.isfinite(d2)
        pairs[k] = int(ok.sum())
        if pairs[k]:
            values[k] = float(d2[ok].mean())
    return MsdCurve(lags, values, pairs)


@dataclass(frozen=True, slots=True)
class PowerLawFit:
    """MSD(τ) = 2 d D τ^α fitted on ``lags_used``; NaN values and a ``reason`` when there is no fit."""

    diffusion: float
    """D, in (positions' unit)² / (time unit)^α."""
    alpha: float
    lags_used: tuple[int, int]
    """First and last lag (frames) in the fit; (0, 0) without a fit."""
    r_squared: float
    """Weighted coefficient of determination in log-log space."""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def fit_power_law(
    curve: MsdCurve,
    frame_time: float = 1.0,
    *,
    max_lags: int = 10,
    min_lags: int = 3,
    min_pairs: int = 10,
    dims: int = 2,
) -> PowerLawFit:
    """Weighted least squares of log MSD = log(2 d D) + α log τ on the first ``max_lags`` usable lags.

    τ = lag * ``frame_time``. Weights are the pair counts divided by the lag (about the number of
    independent displacements). Lags with fewer than ``min_pairs`` pairs are skipped.
    """
    usable = np.flatnonzero((curve.pairs >= min_pairs) & (curve.msd > 0))[:max_lags]
    if usable.size < min_lags:
        nan = float("nan")
        return PowerLawFit(nan, nan, (0, 0), nan, f"fewer than {min_lags} lags with >= {min_pairs} pairs")
    lags = curve.lags[usable]
    x = np.log(lags * frame_time)
    y = np.log(curve.msd[usable])
    w = curve.pairs[usable] / lags
    alpha, intercept = np.polyfit(x, y, 1, w=np.sqrt(w))
    residual = y - (alpha * x + intercept)
    mean_y = np.average(y, weights=w)
    total = float(np.sum(w * (y - mean_y) ** 2))
    r2 = 1.0 - float(np.sum(w * residual**2)) / total if total > 0 else 1.0
    return PowerLawFit(math.exp(intercept) / (2 * dims), float(alpha), (int(lags[0]), int(lags[-1])), r2)


def lag_set(max_lag: int, log_spaced: bool = False, count: int = 16) -> npt.NDArray[np.int64]:
    """Lags 1..max_lag, or about ``count`` log-spaced distinct integers in that range."""
    if max_lag < 1:
        raise ValueError("max_lag must be at least 1")
    if not log_spaced:
        return np.arange(1, max_lag + 1)
    return np.unique(np.round(np.geomspace(1, max_lag, count)).astype(np.int64))


class RollingMSD:
    """Time-averaged MSD over the last ``window`` frames, for many particles, updated per frame.

    Each ``push`` costs O(L) per particle (L lags), vectorised over particles. The squared displacement
    of every pair (j - lag, j) in the window is stored under its later frame j; a push adds the pairs
    the new frame forms with the frames ``lag`` before it, and removes the pairs whose earlier frame just
    left the window by subtracting the very values that were added. Every ``window`` frames the sums are
    recomputed from the stored values, so rounding cannot drift (O(L) amortised). Frames a particle is
    absent from are gaps; frames skipped between two pushes are gaps for everyone.
    """

    def __init__(self, window: int = 256, lags: int | npt.ArrayLike = 32, dims: int = 2) -> None:
        """``lags``: the largest lag L (then lags 1..L) or the lags themselves, frames."""
        lag_array = lag_set(lags) if isinstance(lags, int) else np.unique(np.asarray(lags, dtype=np.int64))
        if window < 2 or lag_array.min() < 1 or lag_array.max() >= window:
            raise ValueError(
                f"need 2 <= window and 1 <= lags < window, got window {window}, lags {lag_array}"
            )
        self.window = window
        self.lags = lag_array
        self.dims = dims
        n = len(lag_array)
        cursors = np.arange(window)[:, None]
        self._earlier = (cursors - lag_array) % window  # [c, k]: slot of frame c - lag_k
        self._leaving = (cursors + lag_array) % window  # [c, k]: slot of the pair that frame c's leaving ends
        self._lag_index = np.arange(n)
        self._slots: dict[int, int] = {}
        self._free: list[int] = []
        self._pos = np.full((0, window, dims), np.nan)
        self._pairs = np.full((0, window, n), np.nan)  # [particle, slot of the later frame, lag]
        self._sum = np.zeros((0, n))
        self._count = np.zeros((0, n), dtype=np.int64)
        self._times = np.full(window, np.nan)
        self._frames = np.full(window, -1, dtype=np.int64)
        self._new = np.empty((0, dims))
        self._cursor = 0
        self._filled = 0
        self._since_recompute = 0
        self.last_frame: int | None = None

    # ------------------------------------------------------------------ particles
    def _slot(self, particle: int) -> int:
        slot = self._slots.get(particle)
        if slot is not None:
            return slot
        if not self._free:
            grow = max(1, len(self._sum))
            start = len(self._sum)
            n = len(self.lags)
            self._pos = np.concatenate([self._pos, np.full((grow, self.window, self.dims), np.nan)])
            self._pairs = np.concatenate([self._pairs, np.full((grow, self.window, n), np.nan)])
            self._sum = np.concatenate([self._sum, np.zeros((grow, n))])
            self._count = np.concatenate([self._count, np.zeros((grow, n), dtype=np.int64)])
            self._free = list(range(start + grow - 1, start - 1, -1))
        slot = self._free.pop()
        self._slots[particle] = slot
        return slot

    def forget(self, particle: int) -> None:
        """Drop a particle's history (e.g. the object was removed)."""
        slot = self._slots.pop(particle, None)
        if slot is not None:
            self._pos[slot] = np.nan
            self._pairs[slot] = np.nan
            self._sum[slot] = 0.0
            self._count[slot] = 0
            self._free.append(slot)

    @property
    def particles(self) -> list[int]:
        return sorted(self._slots)

    # ------------------------------------------------------------------ frames
    def push(self, frame: int, t_s: float, positions: dict[int, tuple[float, float]]) -> None:
        """Positions (x, y) of the particles seen in ``frame`` (acquired at ``t_s`` seconds)."""
        if self.last_frame is not None:
            skipped = frame - self.last_frame - 1
            if skipped < 0:
                raise ValueError(f"frames must increase: {frame} after {self.last_frame} (use restart())")
            if skipped >= self.window:
                self._clear_buffer()
            else:
                for k in range(skipped):
                    self._advance(self.last_frame + 1 + k, np.nan, None)
        slots = [self._slot(p) for p in positions]
        if len(self._new) != len(self._sum):
            self._new = np.empty((len(self._sum), self.dims))
        new = self._new
        new.fill(np.nan)
        if slots:
            new[slots] = list(positions.values())
        self._advance(frame, t_s, new)

    def restart(self) -> None:
        """The frame numbering starts again (a new series): the window empties, particles stay."""
        self._clear_buffer()
        self.last_frame = None

    def _clear_buffer(self) -> None:
        self._pos[:] = np.nan
        self._pairs[:] = np.nan
        self._sum[:] = 0.0
        self._count[:] = 0
        self._times[:] = np.nan
        self._frames[:] = -1
        self._filled = 0

    def _advance(self, frame: int, t_s: float, new: npt.NDArray[np.float64] | None) -> None:
        c = self._cursor
        if self._filled == self.window:  # frame c leaves: remove the pairs it is the earlier end of
            leaving = self._pairs[:, self._leaving[c], self._lag_index]
            ok = np.isfinite(leaving)
            np.subtract(self._sum, leaving, out=self._sum, where=ok)
            self._count -= ok
        else:
            self._filled += 1
        if new is None:
            self._pos[:, c] = np.nan
            self._pairs[:, c] = np.nan
        else:
            self._pos[:, c] = new
            d = new[:, None, :] - self._pos[:, self._earlier[c]]
            np.multiply(d, d, out=d)
            d2 = d.sum(axis=2)
            self._pairs[:, c] = d2
            ok = np.isfinite(d2)
            np.add(self._sum, d2, out=self._sum, where=ok)
            self._count += ok
        self._times[c] = t_s
        self._frames[c] = frame
        self._cursor = (c + 1) % self.window
        self.last_frame = frame
        self._since_recompute += 1
        if self._since_recompute >= self.window:
            self._recompute()

    def _recompute(self) -> None:
        """Exact sums of the stored pairs still in the window (removes accumulated rounding)."""
        age = (self._cursor - 1 - np.arange(self.window)) % self.window  # 0 = newest slot
        inside = age[:, None] <= (self._filled - 1 - self.lags)[None, :]  # earlier end still in window
        values = np.where(inside[None], self._pairs, np.nan)
        ok = np.isfinite(values)
        self._sum = np.where(ok, values, 0.0).sum(axis=1)
        self._count = ok.sum(axis=1)
        self._since_recompute = 0

    # ------------------------------------------------------------------ results
    def curve(self, particle: int) -> MsdCurve:
        """The particle's MSD over the current window (NaN where a lag has no pair)."""
        slot = self._slots[particle]
        count = self._count[slot]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(count > 0, self._sum[slot] / count, np.nan)
        return MsdCurve(self.lags.copy(), values, count.copy())

    def frame_time(self) -> tuple[float, bool]:
        """Seconds per frame from the window's timestamps, and whether the spacing is irregular
        (some interval more than 10 % away from the median)."""
        have = (self._frames >= 0) & np.isfinite(self._times)
        frames, times = self._frames[have], self._times[have]
        if frames.size < 2:
            return float("nan"), False
        order = np.argsort(frames)
        frames, times = frames[order], times[order]
        per_frame = np.diff(times) / np.diff(frames)
        median = float(np.median(per_frame))
        irregular = bool(median > 0 and np.any(np.abs(per_frame - median) > 0.1 * median))
        return median, irregular
