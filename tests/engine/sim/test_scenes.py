"""Prepared simulator scenes: the crystal of cubes (lattice, traps, rocking, vacancies) against theory."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.engine.sim.motion import Motion
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Simulator


def test_cubes_sit_on_the_lattice_with_the_given_pitch_and_vacancies():
    crystal = Crystal(rows=7, cols=7, edge_nm=11.0, gap_nm=2.5)
    sites = np.array(crystal.sites_px(0.5, (256, 256), seed=0))
    assert len(sites) == 49
    pitch = (11.0 + 2.5) / 0.5  # 27 px: 22 px cubes, 5 px gaps
    xs, ys = np.unique(sites[:, 0].round(6)), np.unique(sites[:, 1].round(6))
    assert np.allclose(np.diff(xs), pitch)
    assert np.allclose(np.diff(ys), pitch)
    assert sites.mean(axis=0) == pytest.approx((127.5, 127.5))  # centred in the frame
    holes = Crystal(vacancies=0.1).sites_px(0.5, (256, 256), seed=3)
    assert len(holes) == 49 - 5
    assert holes == Crystal(vacancies=0.1).sites_px(0.5, (256, 256), seed=3)  # the seed decides which


def test_trapped_cubes_jiggle_and_rock_with_the_stationary_spread_of_theory():
    """AR(1) traps: each cube's offset from its site has s.d. jiggle_px per axis, its angle rocking_deg
    about the lattice's orientation (Var = σ² / (1 − (1 − k)²))."""
    crystal = Crystal(rows=3, cols=3, jiggle_px=1.0, rocking_deg=8.0)
    sim = Simulator(crystal.config(frame=(128, 128)), seed=5)
    sites = np.array(crystal.sites_px(0.5, (128, 128), seed=5))
    offsets, angles = [], []
    for i in range(800):
        truth = sim.next().truth
        if i >= 50:  # from the site at frame 0: let the traps reach their stationary spread
            offsets.append(np.stack([truth.x, truth.y], axis=1) - sites)
            angles.append(truth.theta_deg)
    assert np.std(offsets) == pytest.approx(1.0, rel=0.07)
    assert np.std(angles) == pytest.approx(8.0, rel=0.07)
    assert crystal.motion().trap_variance_px2() == pytest.approx(1.0)
    assert crystal.motion().rocking_variance_deg2() == pytest.approx(64.0)


def test_a_trap_holds_brownian_motion_only():
    with pytest.raises(ValueError, match="trap confines Brownian motion"):
        Motion("fbm", alpha=0.5, trap_relaxation=0.1)
    with pytest.raises(ValueError, match="vacancies"):
        Crystal(vacancies=1.0)
