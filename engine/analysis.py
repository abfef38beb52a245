"""Offline trajectory statistics (pure numpy): ensemble MSD, velocity autocorrelation, displacements,
and rotational MSD of orientations reported modulo a symmetry.

Trajectories are dense (n_frames, 2) arrays indexed by frame with NaN rows for gaps (lptem.engine.msd's
``positions_by_frame``). Conventions in docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lptem.engine.msd import MsdCurve, msd

F64 = npt.NDArray[np.float64]


def effective_measurements(n_positions: int, lags: npt.ArrayLike) -> F64:
    """Statistically independent measurements behind a time-averaged MSD of ``n_positions`` positions
    at each lag (Qian, Sheetz and Elson, Biophys. J. 60, 910 (1991), eq. B4)."""
    n = float(n_positions)
    t = np.asarray(lags, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        long = 1 / (1 + ((n - t) ** 3 + 5 * t - 4 * (n - t) ** 2 * t - n) / (6 * (n - t) * t**2))
        short = 6 * (n - t) ** 2 * t / (2 * n - t + 4 * n * t**2 - 5 * t**3)
    return np.where(t > n / 2, long, short)


def msd_weights(trajectory: F64, curve: MsdCurve) -> F64:
    """trackpy's ensemble weights for one trajectory: effective measurements at the lags shorter than
    the trajectory, scaled by the share of frames present, zero where the MSD is undefined, rescaled
    so that their total is unchanged."""
    span = len(trajectory)
    present = int(np.isfinite(trajectory).all(axis=1).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        measurements = effective_measurements(span, curve.lags)
    weights = np.where(curve.lags < span, measurements, 0.0) * present / span
    total = weights.sum()
    weights = np.where(np.isnan(curve.msd), 0.0, weights)
    kept = weights.sum()
    return weights * total / kept if kept > 0 else weights


@dataclass(frozen=True, slots=True)
class EnsembleMsd:
    lags: npt.NDArray[np.int64]
    mean: F64
    """Plain mean over particles of their time-averaged MSDs (NaN-aware)."""
    weighted: F64
    """Weighted by each particle's effective number of measurements (as trackpy.motion.emsd)."""
    particles: npt.NDArray[np.int64]
    """How many particles contribute at each lag."""
    pairs: npt.NDArray[np.int64]
    """Displacement pairs behind each lag, summed over particles."""

    def weighted_curve(self) -> MsdCurve:
        """The weighted ensemble MSD as a curve (for ``fit_power_law``)."""
        return MsdCurve(self.lags, self.weighted, self.pairs)


def ensemble_msd(trajectories: Sequence[F64], max_lag: int) -> EnsembleMsd:
    curves = [msd(t, max_lag) for t in trajectories]
    values = np.array([c.msd for c in curves])
    weights = np.array([msd_weights(t, c) for t, c in zip(trajectories, curves, strict=True)])
    present = np.isfinite(values)
    particles = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.nansum(values * weights, axis=0) / weights.sum(axis=0)
        mean = np.where(particles > 0, np.where(present, values, 0.0).sum(axis=0) / particles, np.nan)
    pairs = np.array([c.pairs for c in curves]).sum(axis=0)
    return EnsembleMsd(np.arange(1, max_lag + 1), mean, weighted, particles, pairs)


def velocity_autocorrelation(trajectories: Sequence[F64], max_lag: int) -> tuple[F64, npt.NDArray[np.int64]]:
    """C(τ) = <v(t)·v(t+τ)> / <v(t)·v(t)>, v(t) = r(t+1) - r(t) (frames), τ = 0..max_lag, pooled over
    particles and over the pairs whose four positions are all present; also the pair counts."""
    sums = np.zeros(max_lag + 1)
    counts = np.zeros(max_lag + 1, dtype=np.int64)
    for trajectory in trajectories:
        v = np.diff(trajectory, axis=0)
        for tau in range(min(max_lag + 1, len(v))):
            dot = np.sum(v[tau:] * v[: len(v) - tau], axis=1)
            ok = np.isfinite(dot)
            sums[tau] += dot[ok].sum()
            counts[tau] += int(ok.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, np.nan)
        return mean / mean[0], counts


@dataclass(frozen=True, slots=True)
class Displacements:
    """True displacement vectors at one lag, pooled over particles."""

    lag: int
    dx: F64
    dy: F64

    def excess_kurtosis(self) -> tuple[float, float]:
        """Per component, E[(d - <d>)^4] / s^4 - 3: 0 for Gaussian (Brownian) displacements."""
        return _excess_kurtosis(self.dx), _excess_kurtosis(self.dy)


def displacements(trajectories: Sequence[F64], lag: int) -> Displacements:
    parts = [t[lag:] - t[:-lag] for t in trajectories if len(t) > lag]
    pooled = np.concatenate(parts) if parts else np.empty((0, 2))
    pooled = pooled[np.isfinite(pooled).all(axis=1)]
    return Displacements(lag, pooled[:, 0], pooled[:, 1])


def _excess_kurtosis(values: F64) -> float:
    if values.size < 4:
        return float("nan")
    centred = values - values.mean()
    var = float(np.mean(centred**2))
    return float(np.mean(centred**4) / var**2 - 3.0) if var > 0 else float("nan")


def unwrap_angles(angles_deg: npt.ArrayLike, symmetry: int = 2) -> F64:
    """A continuous orientation (rad) from θ reported modulo 360°/``symmetry`` (lptem.engine.measure).

    Each change between consecutive known angles is taken as the smallest turn modulo the period, so the
    particle must turn less than half a period (90° for rods, 45° for cubes) between two sightings;
    NaN (a frame without the particle) stays NaN and the turn across it is taken the same way.
    """
    theta = np.radians(np.asarray(angles_deg, dtype=np.float64))
    period = 2 * np.pi / symmetry
    out = np.full(theta.shape, np.nan)
    known = np.flatnonzero(np.isfinite(theta))
    if known.size == 0:
        return out
    turns = np.diff(theta[known])
    turns = (turns + period / 2) % period - period / 2
    out[known] = theta[known[0]] + np.concatenate(([0.0], np.cumsum(turns)))
    return out


def rotational_msd(angles_deg: npt.ArrayLike, max_lag: int, symmetry: int = 2) -> MsdCurve:
    """Time-averaged mean squared angular displacement, rad², at lags 1..``max_lag`` frames (gaps
    skipped). For rotational diffusion about the beam axis it is ``2 D_r τ`` (fit with
    ``fit_power_law(curve, frame_time, dims=1)``, whose D is then D_r in rad²/time^α)."""
    return msd(unwrap_angles(angles_deg, symmetry)[:, None], max_lag)
