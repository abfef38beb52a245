"""Particle motion models with known mean squared displacement (2-D, px and frames).

* ``brownian``: independent Gaussian steps, s.d. σ per axis per frame. MSD(τ) = 2 σ² τ.
* ``fbm``: fractional Brownian motion, Hurst H = α/2, increments are fractional Gaussian noise drawn
  exactly by circulant embedding (Davies-Harte). MSD(τ) = 2 σ² τ^α. Increments are drawn in blocks
  of ``block_frames``; correlations do not cross block boundaries.
* ``ctrw``: continuous-time random walk: Gaussian jumps (s.d. σ per axis) after Pareto waiting times,
  P(wait > t) = (t / t0)^-α for t >= t0, 0 < α < 1. Ensemble MSD(τ) → 2 σ² (τ/t0)^α / (Γ(1-α) Γ(1+α))
  for τ >> t0 (the time-averaged MSD of one trajectory differs: weak ergodicity breaking).

Written as 4 D τ^α, the generalised diffusion coefficient is D = σ²/2 (px² / frame^α). A constant drift
v (px/frame) adds |v|² τ². Rotation: the in-plane angle takes Gaussian steps of s.d. ``rotation_sigma_deg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

MotionModel = Literal["brownian", "fbm", "ctrw"]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Motion:
    model: MotionModel = "brownian"
    sigma_px: float = 2.0
    """Per-axis step s.d. at a lag of one frame (CTRW: per jump), px."""
    alpha: float = 1.0
    """fbm: MSD exponent in (0, 2); ctrw: waiting-time exponent in (0, 1); brownian: must be 1."""
    ctrw_t0_frames: float = 1.0
    rotation_sigma_deg: float = 0.0
    drift_px: tuple[float, float] = (0.0, 0.0)
    """Constant velocity (vx, vy), px/frame."""
    trap_relaxation: float = 0.0
    """Share of its offset from its site (its starting position) a particle loses each frame: a harmonic
    trap (Ornstein–Uhlenbeck, e.g. a lattice site of a crystal); 0 = free. See :meth:`trap_variance_px2`."""
    rocking_relaxation: float = 0.0
    """The same for the angle about its starting angle (rocking instead of free rotation); 0 = free."""
    block_frames: int = 4096

    def __post_init__(self) -> None:
        if self.sigma_px < 0 or self.rotation_sigma_deg < 0:
            raise ValueError("sigma_px and rotation_sigma_deg must be >= 0")
        if not (0 <= self.trap_relaxation < 1 and 0 <= self.rocking_relaxation < 1):
            raise ValueError("trap_relaxation and rocking_relaxation must be in [0, 1)")
        if self.trap_relaxation and self.model != "brownian":
            raise ValueError("a trap confines Brownian motion (model='brownian')")
        if self.model == "brownian" and self.alpha != 1.0:
            raise ValueError("brownian motion has alpha = 1; use model='fbm' for another exponent")
        if self.model == "fbm" and not 0 < self.alpha < 2:
            raise ValueError("fbm needs 0 < alpha < 2")
        if self.model == "ctrw" and not (0 < self.alpha < 1 and self.ctrw_t0_frames > 0):
            raise ValueError("ctrw needs 0 < alpha < 1 and ctrw_t0_frames > 0")

    def trap_variance_px2(self) -> float:
        """Stationary variance of a trapped particle's offset from its site, per axis, px²: the AR(1)
        x' = (1 − k) x + ξ with Var ξ = σ² has Var x = σ² / (1 − (1 − k)²). Equipartition then gives the
        spring constant κ = kT / Var x."""
        k = self.trap_relaxation
        return math.inf if k == 0 else self.sigma_px**2 / (1 - (1 - k) ** 2)

    def rocking_variance_deg2(self) -> float:
        """Stationary variance of a rocking particle's angle about its starting angle, degrees²."""
        k = self.rocking_relaxation
        return math.inf if k == 0 else self.rotation_sigma_deg**2 / (1 - (1 - k) ** 2)

    @property
    def diffusion_px2_per_frame(self) -> float:
        """D in MSD = 4 D τ^α (fbm, brownian); for ctrw the asymptotic prefactor over 4."""
        if self.model == "ctrw":
            a = self.alpha
            return float(
                self.sigma_px**2 / 2 / (self.ctrw_t0_frames**a * math.gamma(1 - a) * math.gamma(1 + a))
            )
        return float(self.sigma_px**2 / 2)

    def analytic_msd_px2(self, lag_frames: npt.ArrayLike) -> F64:
        """Ensemble MSD (px^2) at lags in frames (asymptotic for ctrw), including drift."""
        tau = np.asarray(lag_frames, dtype=np.float64)
        drift2 = self.drift_px[0] ** 2 + self.drift_px[1] ** 2
        return 4 * self.diffusion_px2_per_frame * tau**self.alpha + drift2 * tau**2


def fgn(n: int, hurst: float, count: int, rng: np.random.Generator) -> F64:
    """``count`` independent unit-variance fractional Gaussian noise series of length ``n`` (exact).

    Davies-Harte circulant embedding; returns shape (n, count).
    """
    k = np.arange(n + 1, dtype=np.float64)
    h2 = 2 * hurst
    gamma = 0.5 * (np.abs(k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)
    row = np.concatenate([gamma, gamma[-2:0:-1]])  # circulant first row, length 2n
    eigen = np.fft.fft(row).real
    if eigen.min() < -1e-9 * eigen.max():
        raise ValueError(f"circulant embedding failed for H = {hurst}")
    m = row.size
    pairs = (count + 1) // 2  # real and imaginary parts are two independent series
    z = rng.standard_normal((m, pairs)) + 1j * rng.standard_normal((m, pairs))
    x = np.fft.fft(np.sqrt(np.maximum(eigen, 0.0) / m)[:, None] * z, axis=0)[:n]
    return np.concatenate([x.real, x.imag], axis=1)[:, :count]


class Displacements:
    """Per-frame steps for ``n`` particles: ``next()`` -> (dxy (n, 2) px, dtheta (n,) degrees)."""

    def __init__(self, motion: Motion, n: int, rng: np.random.Generator) -> None:
        self.motion = motion
        self.n = n
        self.rng = rng
        self._block: F64 = np.empty((0, n, 2))
        self._cursor = 0
        self._frame = 0
        wait0 = self._waits(n) * rng.random(n)  # start mid-wait, so jumps do not all start at t = 0
        self._next_jump = wait0

    def next(self) -> tuple[F64, F64]:
        m = self.motion
        if m.model == "brownian":
            steps = self.rng.normal(0.0, m.sigma_px, (self.n, 2))
        elif m.model == "fbm":
            steps = self._fbm_step()
        else:
            steps = self._ctrw_step()
        steps += np.asarray(m.drift_px)
        turns = (
            self.rng.normal(0.0, m.rotation_sigma_deg, self.n) if m.rotation_sigma_deg else np.zeros(self.n)
        )
        self._frame += 1
        return steps, turns

    def _fbm_step(self) -> F64:
        if self._cursor >= len(self._block):
            size = self.motion.block_frames
            series = fgn(size, self.motion.alpha / 2, 2 * self.n, self.rng)
            self._block = self.motion.sigma_px * series.reshape(size, self.n, 2)
            self._cursor = 0
        step: F64 = self._block[self._cursor].copy()
        self._cursor += 1
        return step

    def _waits(self, count: int) -> F64:
        """Pareto waiting times, frames."""
        return self.motion.ctrw_t0_frames * self.rng.random(count) ** (-1.0 / self.motion.alpha)

    def _ctrw_step(self) -> F64:
        end = self._frame + 1
        jumps = np.zeros(self.n)
        due = self._next_jump <= end
        while due.any():
            jumps += due
            self._next_jump[due] += self._waits(int(due.sum()))
            due = self._next_jump <= end
        return self.rng.standard_normal((self.n, 2)) * (self.motion.sigma_px * np.sqrt(jumps))[:, None]
