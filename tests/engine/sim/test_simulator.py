"""The LPTEM simulator against its physics: calibration, renderers, motion theory, shapes, truth."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lptem.engine.measure import measure_label
from lptem.engine.sim.motion import Displacements, Motion, fgn
from lptem.engine.sim.optics import Stack, noise_std_factor
from lptem.engine.sim.shapes import Shape, footprint_area_px, render
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator


def contrast_statistics(config, frames, seed=2):
    """Mean CNR over particles and frames, and the background autocorrelation at 1, 2, 3 px.

    CNR = (μ_bg − μ_p) / σ_bg with μ_p the mean over a particle's truth mask and μ_bg, σ_bg over
    background pixels more than 20 px from any particle (docs/simulator.md).
    """
    sim = Simulator(config, seed=seed)
    cnr, acf = [], []
    for _ in range(frames):
        frame = sim.next(want_labels=True)
        image, labels = frame.image.astype(np.float64), frame.truth.labels
        assert labels is not None
        far = cv2.dilate((labels > 0).view(np.uint8), np.ones((41, 41), np.uint8)) == 0
        mu, sd = image[far].mean(), image[far].std()
        cnr += [(mu - image[labels == k].mean()) / sd for k in np.unique(labels[labels > 0])]
        z = np.where(far, image - mu, 0.0)
        w = far.astype(np.float64)
        acf.append([(z[:, :-d] * z[:, d:]).sum() / (w[:, :-d] * w[:, d:]).sum() / sd**2 for d in (1, 2, 3)])
    return float(np.mean(cnr)), np.mean(acf, axis=0)


def test_same_seed_same_movie_other_seed_other_movie():
    config = SimConfig(shape=(128, 160), particles=Particles(count=3, shape="mixed", width_nm=5.0))
    a, b, c = Simulator(config, seed=5), Simulator(config, seed=5), Simulator(config, seed=6)
    for _ in range(4):
        fa, fb, fc = a.next(want_labels=True), b.next(want_labels=True), c.next()
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.truth.labels, fb.truth.labels)
        np.testing.assert_array_equal(fa.truth.x, fb.truth.x)
        assert not np.array_equal(fa.image, fc.image)


def test_calibration_against_samems_example_clip():
    """Issue 3: at 5 nm of liquid (1024^2, 8-bit defaults) CNR 0.9-1.0 and background autocorrelation
    0.68 / 0.39 / 0.25 at 1 / 2 / 3 px; at 160 nm CNR 0.5-0.6."""
    thin, acf = contrast_statistics(
        SimConfig(stack=Stack(liquid_thickness_nm=5), particles=Particles(count=8)), frames=12
    )
    thick, _ = contrast_statistics(
        SimConfig(stack=Stack(liquid_thickness_nm=160), particles=Particles(count=8)), frames=12
    )
    assert 0.9 <= thin <= 1.0
    assert 0.5 <= thick <= 0.6
    np.testing.assert_allclose(acf, [0.68, 0.39, 0.25], atol=0.02)


def test_fast_renderer_matches_exact_poisson_rendering():
    stats = {}
    for noise in ("fast", "exact"):
        config = SimConfig(shape=(256, 256), noise=noise, particles=Particles(count=3, dispersity=0.0))
        stats[noise] = contrast_statistics(config, frames=120)
    assert stats["fast"][0] == pytest.approx(stats["exact"][0], rel=0.05)
    np.testing.assert_allclose(stats["fast"][1], stats["exact"][1], atol=0.01)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_output_scaling(dtype):
    config = SimConfig(shape=(256, 256), dtype=dtype, particles=Particles(count=0))
    sim = Simulator(config, seed=1)
    image = sim.next().image
    assert image.dtype == np.dtype(dtype)
    lam = config.stack.background(config.frame_time_s, config.pixel_size_nm)
    sigma = math.sqrt(lam + config.stack.read_noise_e**2) * noise_std_factor()
    expected = {
        "uint8": (128.0, 32.0),
        "uint16": (config.uint16_gain * lam + config.uint16_offset, config.uint16_gain * sigma),
        "float32": (lam, sigma),
    }[dtype]
    assert image.mean() == pytest.approx(expected[0], rel=0.01)
    assert image.std() == pytest.approx(expected[1], rel=0.03)


def test_dose_and_thickness_set_the_background():
    stack = Stack(liquid_thickness_nm=100, dose_rate=30)
    n0 = stack.incident_electrons(0.02, 0.5)
    assert n0 == pytest.approx(30 * 0.02 * 25)
    assert stack.background(0.02, 0.5) == pytest.approx(n0 * math.exp(-100 / 185 - 100 / 144))
    sim = Simulator(SimConfig(shape=(64, 64), dtype="float32", particles=Particles(count=0)), seed=0)
    before = sim.next().image.mean()
    sim.set_dose_rate(2 * sim.stack.dose_rate)
    assert sim.next().image.mean() == pytest.approx(2 * before, rel=0.02)


# ------------------------------------------------------------------------------------------- motion


def tamsd(xy, lags):
    return np.array([np.mean(np.sum((xy[lag:] - xy[:-lag]) ** 2, axis=-1)) for lag in lags])


def test_brownian_msd_matches_theory():
    motion = Motion("brownian", sigma_px=1.5)
    steps = Displacements(motion, 200, np.random.default_rng(0))
    xy = np.cumsum([steps.next()[0] for _ in range(2000)], axis=0)
    lags = np.array([1, 2, 5, 10, 20])
    np.testing.assert_allclose(tamsd(xy, lags), motion.analytic_msd_px2(lags), rtol=0.03)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 1.5])
def test_fbm_msd_exponent(alpha):
    motion = Motion("fbm", sigma_px=2.0, alpha=alpha, block_frames=4096)
    steps = Displacements(motion, 100, np.random.default_rng(1))
    xy = np.cumsum([steps.next()[0] for _ in range(4096)], axis=0)
    lags = np.array([1, 2, 4, 8, 16, 32, 64])
    msd = tamsd(xy, lags)
    slope = np.polyfit(np.log(lags), np.log(msd), 1)[0]
    assert slope == pytest.approx(alpha, abs=0.03)
    np.testing.assert_allclose(msd, motion.analytic_msd_px2(lags), rtol=0.1)


def test_fgn_covariance_is_exact():
    x = fgn(64, 0.25, 4000, np.random.default_rng(3))
    lag1 = np.mean(x[1:] * x[:-1])
    assert np.var(x) == pytest.approx(1.0, rel=0.02)
    assert lag1 == pytest.approx(0.5 * (2**0.5 - 2), abs=0.01)  # γ(1) = (2^{2H} - 2) / 2


def test_ctrw_ensemble_msd_follows_its_asymptote():
    motion = Motion("ctrw", sigma_px=1.0, alpha=0.6, ctrw_t0_frames=1.0)
    steps = Displacements(motion, 4000, np.random.default_rng(2))
    xy = np.cumsum([steps.next()[0] for _ in range(400)], axis=0)
    t = np.array([100, 200, 399])
    ensemble = np.mean(np.sum((xy[t] - xy[0]) ** 2, axis=-1), axis=1)
    slope = np.polyfit(np.log(t), np.log(ensemble), 1)[0]
    assert slope == pytest.approx(0.6, abs=0.08)
    np.testing.assert_allclose(ensemble, motion.analytic_msd_px2(t), rtol=0.25)


def test_rotation_and_drift():
    motion = Motion("brownian", sigma_px=0.0, rotation_sigma_deg=3.0, drift_px=(0.5, -0.25))
    steps = Displacements(motion, 500, np.random.default_rng(4))
    moves = [steps.next() for _ in range(100)]
    xy = np.sum([m[0] for m in moves], axis=0)
    turns = np.sum([m[1] for m in moves], axis=0)
    np.testing.assert_allclose(xy, np.tile([50.0, -25.0], (500, 1)))
    assert np.var(turns) == pytest.approx(100 * 9.0, rel=0.15)


def test_motion_validation():
    with pytest.raises(ValueError, match="brownian motion has alpha = 1"):
        Motion("brownian", alpha=0.5)
    with pytest.raises(ValueError, match="ctrw needs"):
        Motion("ctrw", alpha=1.2)


# ------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("shape", "theta"),
    [
        (Shape("sphere", 21.0, 21.0), 0.0),
        (Shape("rod", 40.0, 100.0), 33.0),
        (Shape("cube", 30.0, 30.0), -20.0),
    ],
)
def test_rendered_area_orientation_and_centre(shape, theta):
    f = render(shape, 100.3, 80.7, theta)
    assert f.coverage.sum() == pytest.approx(footprint_area_px(shape), rel=0.01)
    labels = np.zeros((200, 220), np.uint16)
    h, w = f.coverage.shape
    labels[f.r0 : f.r0 + h, f.c0 : f.c0 + w] = (f.coverage >= 0.5).astype(np.uint16)
    m = measure_label(labels, 1)
    assert m is not None
    assert (m.x, m.y) == pytest.approx((100.3, 80.7), abs=0.15)
    if shape.kind == "rod":
        assert m.theta_deg == pytest.approx(theta, abs=1.0)
    peak_nm_per_px = f.thickness_px.max()
    assert peak_nm_per_px == pytest.approx(shape.width_px, rel=0.05)


def test_truth_labels_centres_and_areas():
    config = SimConfig(shape=(256, 256), particles=Particles(count=4, shape="mixed"), collisions=True)
    sim = Simulator(config, seed=3)
    truth = sim.next(want_labels=True).truth
    assert truth.labels is not None
    assert truth.visible.all()
    for k in range(4):
        m = measure_label(truth.labels, k + 1)
        assert m is not None
        assert np.hypot(m.x - truth.x[k], m.y - truth.y[k]) < 0.5
        assert m.area_px == pytest.approx(truth.area_px[k], rel=0.05)


def test_particles_leave_and_enter_and_the_stage_moves_the_view():
    config = SimConfig(
        shape=(96, 96),
        margin_px=48,
        motion=Motion("brownian", sigma_px=6.0),
        particles=Particles(count=6, width_nm=6.0, start_in_view=False),
    )
    sim = Simulator(config, seed=4)
    visibility = np.array([sim.next().truth.visible for _ in range(300)])
    changes = np.count_nonzero(np.diff(visibility.astype(int), axis=0))
    assert changes > 10  # particles leave and (re-)enter the field
    before = sim.next().truth
    sim.move_stage(7.0, -3.0)
    sim.steps = Displacements(Motion("brownian", sigma_px=0.0), 6, sim.rng)  # freeze the particles
    after = sim.next().truth
    inside = before.visible & after.visible
    np.testing.assert_allclose(after.x[inside], before.x[inside] - 7.0)
    np.testing.assert_allclose(after.y[inside], before.y[inside] + 3.0)


def test_collisions_keep_particles_apart():
    config = SimConfig(
        shape=(128, 128),
        motion=Motion("brownian", sigma_px=4.0),
        collisions=True,
        particles=Particles(count=10, width_nm=4.0, dispersity=0.0),
    )
    sim = Simulator(config, seed=5)
    contact = 2 * sim.shapes[0].bounding_radius_px
    for _ in range(100):
        sim.next()
        xy = sim.unwrapped
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        assert d.min() > 0.9 * contact


def test_collisions_follow_the_periodic_world():
    config = SimConfig(shape=(128, 128), motion=Motion("brownian", sigma_px=0.0),
                       particles=Particles(count=2, width_nm=8.0, dispersity=0.0))  # fmt: skip
    sim = Simulator(config, seed=0)
    world_x = sim.world[1]
    r = sim.shapes[0].bounding_radius_px
    sim.unwrapped = np.array([[1.0, 60.0], [world_x - 1.0, 60.0]])  # 2 px apart across the seam
    sim.next()
    sim.next()
    gap = (sim.unwrapped[0, 0] - sim.unwrapped[1, 0]) % world_x
    assert gap == pytest.approx(2 * r, abs=1e-6)


def test_the_hidden_border_widens_for_large_particles():
    config = SimConfig(
        shape=(256, 256), margin_px=16, particles=Particles(count=1, shape="rod", width_nm=20.0)
    )
    sim = Simulator(config, seed=0)
    assert sim.margin >= sim.shapes[0].bounding_radius_px + 2
    assert sim.world == (256 + 2 * sim.margin, 256 + 2 * sim.margin)


def test_a_particle_just_outside_the_frame_blurs_into_it():
    """Same seed, same noise: the difference between a particle 2 px left of the frame and one far
    away is the blur alone (fast renderer; exact's Poisson draws are not reproducible this way)."""
    config = SimConfig(
        shape=(128, 128), dtype="float32", motion=Motion("brownian", sigma_px=0.0),
        particles=Particles(count=1, width_nm=10.0, dispersity=0.0),
    )  # fmt: skip

    def frames(place):
        sim = Simulator(config, seed=1)
        sim.unwrapped = np.array([place(sim, sim.shapes[0].bounding_radius_px)])
        return np.array([sim.next().image for _ in range(3)])

    near = frames(lambda s, r: [s.fov_origin[0] - r - 2.0, s.fov_origin[1] + 64.0])
    far = frames(lambda s, _r: [s.fov_origin[0] + 192.0, s.fov_origin[1] + 192.0])
    difference = (near - far).mean(axis=0)
    assert difference[40:88, 0].mean() < -0.01  # electrons: the halo reaches into the frame
    assert np.all(difference[:, -8:] == 0.0)  # and does not wrap round to the far side


def test_metadata_reports_the_current_dose():
    sim = Simulator(SimConfig(shape=(64, 64), particles=Particles(count=0)), seed=0)
    sim.set_dose_rate(12.5)
    meta = sim.metadata()
    assert meta["config"]["stack"]["dose_rate"] == 12.5
    assert meta["derived"]["incident_electrons_per_px"] == pytest.approx(12.5 * 0.02 * 2.5**2)


@pytest.mark.parametrize(("model", "alpha"), [("brownian", 1.0), ("fbm", 0.5), ("ctrw", 0.6)])
def test_physical_diffusion_units_round_trip(model, alpha):
    from lptem.clients.camera.simcam import motion_from_physical  # noqa: PLC0415 - a client helper

    motion = motion_from_physical(model, 40.0, alpha, pixel_size_nm=0.25, fps=50.0)
    d_nm = motion.diffusion_px2_per_frame * 0.25**2 / (1 / 50.0) ** alpha
    assert d_nm == pytest.approx(40.0)
