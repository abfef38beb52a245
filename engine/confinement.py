"""Particles held in a trap (a lattice site, a tether, an optical trap): the Ornstein–Uhlenbeck fit of
their mean squared displacement, with the localisation noise taken out.

Per coordinate, a particle that loses a share 1 − ρ of its offset from the site each frame (an AR(1)
process, x[n+1] = ρ x[n] + η with η of variance σ² (1 − ρ²), whose stationary variance is σ²), observed
with independent localisation noise of variance ε², has

    MSD(n) = 2 σ² (1 − ρⁿ) + 2 ε²            for lags n ≥ 1 (per coordinate).

Fitted on lags 1 .. L (weighted by the number of pairs behind each lag; ρ by a bounded search, σ² and ε²
by linear least squares at each ρ, ε² ≥ 0), it gives the stationary variance σ², hence the spring
constant k = k_B T / σ²; the relaxation ρ per frame and the time constant τ = −Δt / ln ρ; the
localisation noise ε², which a plain variance of the positions would add to σ² (a 0.7 px error on a
1 px jiggle makes k 50 % too small); and the diffusion coefficient of the free steps,
D = σ² (1 − ρ²) / (2 Δt), the translational D or, for angles in radians, the rotational D_r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from lptem.engine.msd import MsdCurve

_MIN_LAGS = 4
_RHO_BOUNDS = (1e-6, 1 - 1e-6)


@dataclass(frozen=True, slots=True)
class TrapFit:
    """An Ornstein–Uhlenbeck fit per coordinate; NaN values and a ``reason`` when there is none."""

    variance: float
    """σ², stationary variance of the offset from the site (positions' unit²)."""
    relaxation: float
    """ρ, the share of the offset kept from one frame to the next."""
    noise_variance: float
    """ε², localisation noise variance (positions' unit²)."""
    diffusion: float
    """D = σ² (1 − ρ²) / (2 Δt), positions' unit² per time unit."""
    time_constant: float
    """τ = −Δt / ln ρ, time unit."""
    lags: int
    """Lags fitted (1 .. lags)."""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def fit_trap(curve: MsdCurve, dt: float, *, dims: int, max_lag: int | None = None) -> TrapFit:
    """Fit ``curve`` (an MSD summed over ``dims`` coordinates, lptem.engine.msd) with the trap model
    (module docstring) on lags 1 .. ``max_lag`` (default all); ``dt`` is the frame time."""
    lags = curve.lags.astype(np.float64)
    per_coordinate = curve.msd / dims
    use = np.isfinite(per_coordinate) & (curve.pairs > 0)
    if max_lag is not None:
        use &= lags <= max_lag
    if int(use.sum()) < _MIN_LAGS:
        return _no_fit(int(use.sum()), f"fewer than {_MIN_LAGS} lags with pairs")
    n, y, w = lags[use], per_coordinate[use], np.sqrt(curve.pairs[use].astype(np.float64))

    def solve(rho: float) -> tuple[float, float, float]:
        """(σ², ε², weighted squared residual) at ``rho``."""
        shape = 1.0 - rho**n
        a = np.column_stack([2 * shape, np.full_like(n, 2.0)]) * w[:, None]
        (variance, noise), *_ = np.linalg.lstsq(a, y * w, rcond=None)
        if noise < 0:  # no noise left: fit σ² alone
            noise = 0.0
            variance = float(np.dot(2 * shape * w, y * w) / np.dot(2 * shape * w, 2 * shape * w))
        residual = y - 2 * variance * shape - 2 * noise
        return float(variance), float(noise), float(np.sum((residual * w) ** 2))

    best = minimize_scalar(lambda rho: solve(rho)[2], bounds=_RHO_BOUNDS, method="bounded")
    rho = float(best.x)
    variance, noise, _ = solve(rho)
    if not variance > 0:
        return _no_fit(len(n), "no confined motion in the MSD (it does not level off)")
    return TrapFit(
        variance=variance,
        relaxation=rho,
        noise_variance=noise,
        diffusion=variance * (1 - rho**2) / (2 * dt),
        time_constant=-dt / math.log(rho),
        lags=int(n.max()),
    )


def _no_fit(lags: int, reason: str) -> TrapFit:
    nan = float("nan")
    return TrapFit(nan, nan, nan, nan, nan, lags, reason)
