"""Trajectory statistics against theory, against trackpy (pinned 0.7) and streaming against batch."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lptem.engine.analysis import (
    displacements,
    ensemble_msd,
    msd_weights,
    rotational_msd,
    unwrap_angles,
    velocity_autocorrelation,
)
from lptem.engine.msd import RollingMSD, fit_power_law, lag_set, msd, positions_by_frame
from lptem.engine.sim.motion import Displacements, Motion, fgn

trackpy = pytest.importorskip("trackpy")


def random_walk(n, rng, sigma=1.0):
    return np.cumsum(rng.normal(0, sigma, size=(n, 2)), axis=0)


def with_gaps(xy, rng, share):
    out = xy.copy()
    out[rng.random(len(xy)) < share] = np.nan
    return out


def as_trackpy(xy, particle=0):
    frames = np.flatnonzero(np.isfinite(xy).all(axis=1))
    return pd.DataFrame({"frame": frames, "particle": particle, "x": xy[frames, 0], "y": xy[frames, 1]})


def trackpy_msd(xy, max_lag):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trackpy's own pandas/numpy deprecation chatter
        return trackpy.motion.msd(as_trackpy(xy), mpp=1.0, fps=1.0, max_lagtime=max_lag)["msd"].to_numpy()


def test_trackpy_is_the_pinned_version():
    assert trackpy.__version__.startswith("0.7")  # NaN-for-gaps semantics: pyproject pins trackpy==0.7


@pytest.mark.parametrize("gap_share", [0.0, 0.1, 0.4])
def test_batch_msd_equals_trackpy(gap_share):
    rng = np.random.default_rng(7)
    xy = with_gaps(random_walk(600, rng), rng, gap_share)
    xy[0] = xy[-1] = 1.0  # trackpy spans first..last present frame; keep both ends present
    ours = msd(xy, 50)
    theirs = trackpy_msd(xy, 50)
    ok = np.isfinite(theirs)
    assert np.array_equal(np.isfinite(ours.msd), ok)
    np.testing.assert_allclose(ours.msd[ok], theirs[ok], rtol=1e-9)


def test_a_lag_without_pairs_is_nan_with_zero_pairs():
    xy = np.full((20, 2), np.nan)
    xy[[0, 1, 2, 10]] = [[0, 0], [1, 0], [1, 1], [5, 5]]
    curve = msd(xy, 12)
    assert curve.pairs.tolist()[:3] == [2, 1, 0]
    assert np.isnan(curve.msd[2])
    assert curve.msd[7] == pytest.approx(32.0)  # frames 2 -> 10: 4² + 4²


def test_streaming_equals_batch_at_every_step_with_gaps_and_equals_trackpy():
    rng = np.random.default_rng(3)
    n, window, lags = 500, 64, lag_set(40, log_spaced=True, count=10)
    walks = {p: with_gaps(random_walk(n, rng), rng, 0.2) for p in range(4)}
    rolling = RollingMSD(window, lags)
    for frame in range(n):
        if frame in (200, 201, 202, 203):  # frames the daemon never processed (dropped)
            for walk in walks.values():
                walk[frame] = np.nan
            continue
        if frame == 300:
            rolling.forget(3)  # an object removed
        present = {
            p: tuple(w[frame])
            for p, w in walks.items()
            if np.isfinite(w[frame]).all() and not (p == 3 and frame >= 300)
        }
        rolling.push(frame, frame * 0.02, present)
        for p in rolling.particles:
            start = max(0, frame - window + 1)
            window_xy = walks[p][start : frame + 1]
            if p == 3 and frame >= 300:
                window_xy = np.where(np.arange(start, frame + 1)[:, None] >= 300, window_xy, np.nan)
            batch = msd(window_xy, int(lags.max()))
            streamed = rolling.curve(p)
            expected, pairs = batch.msd[lags - 1], batch.pairs[lags - 1]
            assert np.array_equal(streamed.pairs, pairs), (frame, p)
            ok = np.isfinite(expected)
            np.testing.assert_allclose(streamed.msd[ok], expected[ok], rtol=1e-9)
            assert np.isnan(streamed.msd[~ok]).all()
    last = walks[0][n - window : n]
    seen = np.flatnonzero(np.isfinite(last).all(axis=1))
    clipped = last[seen[0] : seen[-1] + 1]
    theirs = trackpy_msd(clipped, int(lags.max()))
    ok = np.isfinite(theirs[lags - 1])
    np.testing.assert_allclose(rolling.curve(0).msd[ok], theirs[lags - 1][ok], rtol=1e-9)


def test_rolling_restart_and_ordering():
    rolling = RollingMSD(16, 4)
    rolling.push(5, 0.1, {1: (0.0, 0.0)})
    rolling.push(6, 0.12, {1: (1.0, 0.0)})
    with pytest.raises(ValueError, match="frames must increase"):
        rolling.push(6, 0.14, {1: (2.0, 0.0)})
    rolling.restart()  # a camera whose counter started again
    rolling.push(0, 0.2, {1: (9.0, 9.0)})
    assert rolling.curve(1).pairs.tolist() == [0, 0, 0, 0]


def test_brownian_diffusion_within_5_percent_over_ten_thousand_steps():
    sigma = 1.3  # px per axis per frame: D = σ²/2 px²/frame
    xy = random_walk(10_000, np.random.default_rng(11), sigma)
    fit = fit_power_law(msd(xy, 10))
    assert fit.ok
    assert fit.diffusion == pytest.approx(sigma**2 / 2, rel=0.05)
    assert fit.alpha == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0])
def test_fractional_brownian_exponent_within_0_05(alpha):
    steps = fgn(10_000, alpha / 2, 2, np.random.default_rng(int(alpha * 100)))
    xy = np.cumsum(steps, axis=0)
    fit = fit_power_law(msd(xy, 10))
    assert fit.alpha == pytest.approx(alpha, abs=0.05)


def test_units_nm_and_seconds():
    pixel_nm, fps = 0.25, 50.0
    xy = random_walk(10_000, np.random.default_rng(5), 2.0)
    in_px = fit_power_law(msd(xy, 10))  # px² / frame^α
    in_nm = fit_power_law(msd(xy * pixel_nm, 10), frame_time=1 / fps)  # nm² / s^α
    assert in_nm.alpha == pytest.approx(in_px.alpha, rel=1e-12)
    assert in_nm.diffusion == pytest.approx(in_px.diffusion * pixel_nm**2 * fps**in_px.alpha, rel=1e-9)
    rolling = RollingMSD(256, 8)
    for frame in range(0, 40, 2):  # every second frame processed: the frame time is still 20 ms
        rolling.push(frame, frame / fps, {1: (0.0, 0.0)})
    frame_time, irregular = rolling.frame_time()
    assert frame_time == pytest.approx(1 / fps)
    assert irregular is False
    rolling.push(40, 40 / fps + 0.01, {1: (0.0, 0.0)})
    assert rolling.frame_time()[1] is True  # a late frame: irregular spacing flagged


def test_no_fit_without_enough_pairs():
    fit = fit_power_law(msd(random_walk(5, np.random.default_rng(0)), 10))
    assert not fit.ok
    assert np.isnan(fit.diffusion)
    assert "fewer than" in (fit.reason or "")


def test_ensemble_weighting_equals_trackpy_emsd():
    rng = np.random.default_rng(9)
    sizes = ((400, 0.0), (250, 0.3), (120, 0.1), (25, 0.0), (12, 0.2))  # some shorter than the lags
    walks = [with_gaps(random_walk(n, rng), rng, share) for n, share in sizes]
    for w in walks:
        w[0] = w[-1] = 0.0
    ours = ensemble_msd(walks, 30)
    frames = pd.concat([as_trackpy(w, p) for p, w in enumerate(walks)], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = trackpy.motion.emsd(frames, mpp=1.0, fps=1.0, max_lagtime=30).to_numpy()
    np.testing.assert_allclose(ours.weighted, theirs, rtol=1e-9)
    assert ours.particles.tolist()[0] == 5
    assert ours.particles.tolist()[29] == 3
    assert msd_weights(walks[0], msd(walks[0], 30)).sum() > 0


def test_velocity_autocorrelation_against_theory():
    rng = np.random.default_rng(2)
    brownian = [random_walk(5000, rng) for _ in range(3)]
    c, counts = velocity_autocorrelation(brownian, 3)
    assert c[0] == 1.0
    assert np.abs(c[1:]).max() < 0.03  # independent steps
    fbm = [np.cumsum(fgn(5000, 0.25, 2, rng), axis=0)]
    c, _ = velocity_autocorrelation(fbm, 2)
    assert c[1] == pytest.approx((2 ** (2 * 0.25) - 2) / 2, abs=0.03)  # fGn's lag-1 correlation
    assert counts[0] == 3 * 4999


def test_displacement_vectors_and_kurtosis():
    rng = np.random.default_rng(4)
    gaussian = displacements([random_walk(20_000, rng)], 4)
    assert len(gaussian.dx) == 19_996
    assert np.std(gaussian.dx) == pytest.approx(2.0, rel=0.03)  # sqrt(4 frames) x σ = 1
    assert max(abs(k) for k in gaussian.excess_kurtosis()) < 0.15
    ctrw = Displacements(Motion("ctrw", sigma_px=1.0, alpha=0.5), 200, rng)
    walk = np.cumsum([ctrw.next()[0] for _ in range(400)], axis=0)
    heavy = displacements([walk[:, k] for k in range(200)], 10)
    assert min(heavy.excess_kurtosis()) > 1.0  # heavy tails of a continuous-time random walk


def test_positions_by_frame_places_gaps():
    first, dense = positions_by_frame([3, 4, 7], [[0, 0], [1, 1], [2, 2]])
    assert first == 3
    assert np.isnan(dense[2:4]).all()
    assert dense.shape == (5, 2)


@pytest.mark.parametrize("symmetry", [2, 4, 6])
def test_rotational_diffusion_is_recovered_from_angles_reported_modulo_the_symmetry(symmetry):
    """Free rotation about the beam axis, 3° s.d. per frame at 50 fps: D_r = σ²/(2 Δt) = 0.0685 rad²/s.
    The tracker reports θ modulo 360°/N (and misses some frames); unwrapping restores the walk."""
    rng = np.random.default_rng(symmetry)
    dt, sigma = 0.02, np.radians(3.0)
    walk = np.cumsum(rng.normal(0.0, sigma, 20_000))
    period = 360.0 / symmetry
    reported = (np.degrees(walk) + period / 2) % period - period / 2
    reported[rng.random(walk.size) < 0.05] = np.nan  # 5 % of frames without the particle
    unwrapped = unwrap_angles(reported, symmetry)
    known = np.isfinite(unwrapped)
    assert np.allclose(unwrapped[known] - unwrapped[known][0], walk[known] - walk[known][0])
    fit = fit_power_law(rotational_msd(reported, 20, symmetry), dt, dims=1)
    assert fit.diffusion == pytest.approx(sigma**2 / (2 * dt), rel=0.05)
    assert fit.alpha == pytest.approx(1.0, abs=0.05)


def test_a_turn_of_more_than_half_a_period_between_sightings_is_taken_the_short_way():
    """The stated limit of unwrapping: 50° in one step of a 4-fold shape reads as −40°."""
    assert np.degrees(unwrap_angles([0.0, 50.0 - 90.0], 4)).tolist() == pytest.approx([0.0, -40.0])
