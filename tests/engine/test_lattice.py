"""A crystal's lattice from its autocorrelation, its sites, and their use by the split, the scale estimate
and the tracker (lptem.engine.lattice)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lptem.engine.classical import ClassicalConfig, ClassicalTracker
from lptem.engine.lattice import Lattice, find_lattice, lattice_sites
from lptem.engine.scale import estimate_radius
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Simulator
from lptem.engine.split import find_markers

BACKGROUND, DARK = 160.0, 60.0


def particles_at(
    centres: np.ndarray, *, edge: float = 0.0, radius: float = 0.0, noise: float = 25.0, seed: int = 0
) -> np.ndarray:
    """Bright particles (squares of ``edge`` or discs of ``radius``) at ``centres`` (row, col) on a dark
    background, blurred by 1 px, with Gaussian noise: a band-passed crystal as the split sees it."""
    shape = (256, 256)
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    inside = np.zeros(shape, dtype=bool)
    for r, c in centres:
        if edge:
            inside |= (np.abs(rows - r) <= edge / 2) & (np.abs(cols - c) <= edge / 2)
        else:
            inside |= (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
    image = np.where(inside, DARK, 0.0).astype(np.float32)
    image = np.asarray(cv2.GaussianBlur(image, (0, 0), 1.0), dtype=np.float32)
    return image + np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)


def square_lattice(pitch: float, n: int = 6, origin: float = 60.0) -> np.ndarray:
    return np.array([(origin + pitch * i, origin + pitch * j) for i in range(n) for j in range(n)])


def band_of(image: np.ndarray, radius: float) -> np.ndarray:
    """The split's centre-surround response (a quarter of the radius minus the radius)."""
    fine = cv2.GaussianBlur(image, (0, 0), radius / 4)
    return np.asarray(fine - cv2.GaussianBlur(image, (0, 0), radius), dtype=np.float32)


def crystal_mask(centres: np.ndarray, reach: float) -> np.ndarray:
    """The pixels within ``reach`` of the crystal's outermost sites (its component)."""
    mask = np.zeros((256, 256), dtype=np.uint8)
    low, high = centres.min(axis=0) - reach, centres.max(axis=0) + reach
    mask[int(low[0]) : int(high[0]) + 1, int(low[1]) : int(high[1]) + 1] = 1
    return mask.astype(bool)


def nearest(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each truth position, the distance to the nearest found one (px)."""
    gaps = np.hypot(*(truth[:, None, :] - found[None, :, :]).transpose(2, 0, 1))
    return np.asarray(gaps.min(axis=1), dtype=np.float64)


def test_a_square_lattice_of_cubes_two_px_apart_gives_its_vectors_and_every_site():
    truth = square_lattice(24.0)  # 22 px cubes, 2 px gaps
    band = band_of(particles_at(truth, edge=22.0), 11.0)
    mask = crystal_mask(truth, 12.0)
    lattice = find_lattice(band, mask, min_px=1.2 * 11, max_px=4 * 11)
    assert lattice is not None
    lengths = np.hypot(*lattice.vectors.T)
    assert lengths == pytest.approx([24.0, 24.0], rel=0.08)  # the autocorrelation's broad peaks
    cosine = abs(np.dot(*lattice.vectors)) / lengths.prod()
    assert cosine < 0.05  # square
    sites = lattice_sites(band, mask, lattice)
    assert len(sites) == len(truth)
    assert nearest(sites.astype(float), truth).max() <= 2.0  # whole pixels, after the fit to the particles


def test_a_hexagonal_crystal_of_touching_discs_has_its_pitch_of_one_diameter():
    pitch = 20.0
    truth = np.array(
        [
            (60 + pitch * math.sqrt(3) / 2 * i, 60 + pitch * (j + (i % 2) / 2))
            for i in range(6)
            for j in range(6)
        ]
    )
    band = band_of(particles_at(truth, radius=10.0), 10.0)
    lattice = find_lattice(band, crystal_mask(truth, 10.0), min_px=12.0, max_px=40.0)
    assert lattice is not None
    assert lattice.pitch_px == pytest.approx(pitch, rel=0.08)
    angle = math.degrees(math.acos(abs(np.dot(*lattice.vectors)) / np.hypot(*lattice.vectors.T).prod()))
    assert angle == pytest.approx(60.0, abs=5.0)
    sites = lattice_sites(band, crystal_mask(truth, 10.0), lattice)
    assert len(sites) == len(truth)
    assert nearest(sites.astype(float), truth).max() <= 2.0


@pytest.mark.parametrize(
    "centres",
    [
        np.random.default_rng(3).uniform(40, 216, (12, 2)),  # particles at random
        np.array([(128.0, 60.0 + 24 * k) for k in range(6)]),  # a row
        np.array([(100.0, 100.0), (124.0, 100.0), (100.0, 124.0)]),  # three in a corner
        np.empty((0, 2)),  # noise alone
    ],
    ids=["random", "row", "corner", "noise"],
)
def test_what_is_not_a_lattice_gives_none(centres):
    band = band_of(particles_at(centres, radius=10.0), 10.0)
    assert find_lattice(band, np.ones(band.shape, dtype=bool), min_px=12.0, max_px=40.0) is None


def test_sites_on_a_single_row_of_the_crystal_keep_the_vectors_and_fit_the_origin():
    """A mask one row of particles high fixes only one vector (a full fit would collapse the other and
    repeat every site): the vectors are kept as found and only the origin is fitted."""
    truth = square_lattice(24.0)
    band = band_of(particles_at(truth, edge=22.0), 11.0)
    strip = np.zeros(band.shape, dtype=bool)
    strip[105:111, 40:200] = True  # the row of particles at row 108
    lattice = Lattice(np.array([[24.0, 0.0], [0.0, 24.0]]))
    sites = lattice_sites(band, strip, lattice)
    in_row = truth[np.abs(truth[:, 0] - 108.0) < 1]
    assert len(sites) == len(in_row)
    assert nearest(sites.astype(float), in_row).max() <= 2.0


def simulated_crystal(gap_px: float, size: int = 512, seed: int = 0) -> Simulator:
    """The simulator's 7 x 7 crystal of 22 px cubes at 0.5 nm/px."""
    config = Crystal(gap_nm=gap_px * 0.5).config(pixel_size_nm=0.5, frame=(size, size), seed=seed)
    return Simulator(config, seed=seed)


@pytest.mark.parametrize(("gap_px", "size"), [(2.0, 512), (2.0, 1024), (5.0, 512)])
def test_a_crystal_whose_blobs_are_its_texture_is_measured_by_half_its_pitch(gap_px, size):
    found = estimate_radius(simulated_crystal(gap_px, size).next().image, dark=True)
    assert found is not None
    assert found.sigma_px * math.sqrt(2) > 20.0  # what the blobs alone said: several cubes
    assert found.pitch_px == pytest.approx(22.0 + gap_px, rel=0.08)
    assert found.radius_px == pytest.approx((22.0 + gap_px) / 2, rel=0.08)


def test_the_scale_estimate_keeps_its_blobs_where_the_lattice_is_coarser_than_them():
    found = estimate_radius(simulated_crystal(5.0, 1024).next().image, dark=True)
    assert found is not None
    assert found.pitch_px is None
    assert found.radius_px == pytest.approx(11.0, rel=0.1)


def test_the_lattice_finds_cubes_that_maxima_alone_miss():
    """On the simulator's crystal with 2 px gaps, the band's separate maxima leave cubes out; the
    tracker, with no size given, follows every cube from its lattice site."""
    sim = simulated_crystal(2.0)
    tracker = ClassicalTracker(ClassicalConfig(auto_detect=True, symmetry=4))
    for _ in range(8):
        frame = sim.next()
        result = tracker.step(frame.image)
    truth = np.column_stack([frame.truth.x, frame.truth.y])
    seen = np.array([(o.x, o.y) for o in result.objects if o.visible])
    assert tracker.settings()["scale_lattice_pitch_px"] == pytest.approx(24.0, rel=0.08)
    assert len(seen) == len(truth) == 49
    assert np.median(nearest(seen, truth)) < 1.5
    assert nearest(seen, truth).max() < 5.0
    image = -frame.image.astype(np.float32)
    band = band_of(image, 12.0)
    mask = np.zeros(band.shape, dtype=bool)
    low, high = truth.min(axis=0) - 12, truth.max(axis=0) + 12
    mask[int(low[1]) : int(high[1]), int(low[0]) : int(high[0])] = True
    maxima = find_markers(mask, band, 12.0)[:, ::-1].astype(float)  # (x, y)
    assert (nearest(maxima, truth) > 4.0).sum() >= 5  # what the split had without the lattice
