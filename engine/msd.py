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
