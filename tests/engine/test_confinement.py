"""The trap (Ornstein–Uhlenbeck) fit against its theory on simulated AR(1) trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.engine.analysis import rotational_msd
from lptem.engine.confinement import fit_trap
from lptem.engine.msd import msd


def trapped(n: int, sigma: float, rho: float, dims: int, seed: int) -> np.ndarray:
    """An AR(1) trajectory with stationary s.d. ``sigma`` per coordinate, started in equilibrium."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, dims))
    x[0] = rng.normal(0, sigma, dims)
    step = sigma * np.sqrt(1 - rho**2)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + rng.normal(0, step, dims)
    return x


@pytest.mark.parametrize(("rho", "noise"), [(0.8, 0.0), (0.8, 0.7), (0.9, 0.3)])
def test_spring_relaxation_noise_and_diffusion_are_recovered(rho, noise):
    sigma, dt = 1.0, 0.02
    positions = trapped(20000, sigma, rho, 2, seed=1)
    observed = positions + np.random.default_rng(2).normal(0, noise, positions.shape)
    fit = fit_trap(msd(observed, 60), dt, dims=2)
    assert fit.ok
    assert fit.variance == pytest.approx(sigma**2, rel=0.05)  # k = kT / σ², with the noise taken out
    assert fit.relaxation == pytest.approx(rho, abs=0.02)
    assert fit.noise_variance == pytest.approx(noise**2, abs=0.03)
    assert fit.diffusion == pytest.approx(sigma**2 * (1 - rho**2) / (2 * dt), rel=0.1)
    naive = observed.var(axis=0).mean()  # what a plain variance would call σ²
    assert naive == pytest.approx(sigma**2 + noise**2, rel=0.05)


def test_rocking_angles_give_the_rotational_diffusion_coefficient():
    """Angles reported modulo 90° (a cube) are unwrapped before the fit; D_r in rad²/s."""
    sigma_deg, rho, dt = 10.0, 0.9, 0.02
    theta = trapped(20000, sigma_deg, rho, 1, seed=3)[:, 0] + 30.0
    reported = (theta + 45.0) % 90.0 - 45.0
    fit = fit_trap(rotational_msd(reported, 60, symmetry=4), dt, dims=1)
    expected = np.radians(sigma_deg) ** 2 * (1 - rho**2) / (2 * dt)
    assert fit.diffusion == pytest.approx(expected, rel=0.1)


def test_free_diffusion_has_no_trap():
    walk = np.cumsum(np.random.default_rng(4).normal(0, 1.0, (5000, 2)), axis=0)
    fit = fit_trap(msd(walk, 40), 0.02, dims=2)
    assert fit.relaxation > 0.99  # an MSD that keeps growing: the "trap" relaxes no faster than the lags


def test_too_short_a_curve_is_refused_with_a_reason():
    fit = fit_trap(msd(trapped(4, 1.0, 0.8, 2, seed=5), 10), 0.02, dims=2)
    assert not fit.ok
    assert "lags" in (fit.reason or "")
