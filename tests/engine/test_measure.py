"""Mask measurements against analytic shapes and scikit-image's regionprops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.measure import regionprops

from lptem.engine.measure import measure_label, measure_labels, measure_mask, orientation_deg


def ellipse_mask(shape, cx, cy, a, b, theta_deg):  # noqa: PLR0917 - the ellipse's own parameters
    """Pixels whose centres lie inside an ellipse (semi-axes a >= b, major axis at theta from +x to +y)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    t = math.radians(theta_deg)
    u = (xx - cx) * math.cos(t) + (yy - cy) * math.sin(t)
    v = -(xx - cx) * math.sin(t) + (yy - cy) * math.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


@pytest.mark.parametrize("theta", [-80.0, -45.0, -10.0, 0.0, 30.0, 60.0, 89.0])
def test_ellipse_centroid_area_and_orientation(theta):
    mask = ellipse_mask((200, 220), 101.3, 95.7, 40, 12, theta)
    m = measure_mask(mask)
    assert m is not None
    # A pixelated ellipse's centroid differs from the continuous one by up to ~0.15 px (digitisation);
    # exact agreement with another implementation is checked against skimage below.
    assert m.x == pytest.approx(101.3, abs=0.2)
    assert m.y == pytest.approx(95.7, abs=0.2)
    assert m.area_px == pytest.approx(math.pi * 40 * 12, rel=0.01)
    assert m.theta_deg == pytest.approx(theta, abs=0.5)


def test_orientation_matches_skimage_convention_documented_in_measure():
    rng = np.random.default_rng(3)
    for _ in range(20):
        theta = rng.uniform(-89, 89)
        mask = ellipse_mask((160, 160), 80, 80, rng.uniform(15, 40), rng.uniform(4, 12), theta)
        ours = measure_mask(mask)
        assert ours is not None
        props = regionprops(mask.astype(np.uint8))[0]
        converted = 90.0 - math.degrees(props.orientation)
        converted = converted - 180.0 if converted > 90.0 else converted
        assert ours.theta_deg == pytest.approx(converted, abs=1e-6)
        assert (ours.y, ours.x) == pytest.approx(props.centroid, abs=1e-9)
        assert ours.area_px == props.area


def test_bbox_is_exclusive_and_offset_applies():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    m = measure_mask(mask, x_offset=100, y_offset=50)
    assert m is not None
    assert m.bbox == (103, 52, 109, 55)
    assert (m.x, m.y) == pytest.approx((105.5, 53.0))
    assert m.theta_deg == pytest.approx(0.0)


def test_empty_mask_and_absent_label():
    assert measure_mask(np.zeros((5, 5), dtype=bool)) is None
    assert measure_label(np.zeros((5, 5), dtype=np.uint16), 3) is None


def test_measure_label_equals_mask_measurement():
    labels = np.zeros((50, 60), dtype=np.uint16)
    labels[ellipse_mask((50, 60), 30, 20, 10, 4, 25)] = 7
    assert measure_label(labels, 7) == measure_mask(labels == 7)


def test_orientation_range_is_half_open():
    assert orientation_deg(1.0, 2.0, 0.0) == 90.0  # vertical major axis reports +90, never -90
    assert orientation_deg(2.0, 1.0, 0.0) == 0.0
    assert orientation_deg(1.0, 1.0, 0.0) == 0.0  # no preferred axis


def polygon_mask(shape, cx, cy, corners, radius, face_normal_deg):  # noqa: PLR0917 - the polygon's own
    """A regular polygon with ``corners`` vertices at ``radius`` px, one face normal at the given angle."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = np.ones(shape, dtype=bool)
    apothem = radius * math.cos(math.pi / corners)
    for k in range(corners):
        t = math.radians(face_normal_deg) + 2 * math.pi * k / corners
        inside &= (xx - cx) * math.cos(t) + (yy - cy) * math.sin(t) <= apothem
    return inside


def angle_error(a: float, b: float, period: float) -> float:
    return abs((a - b + period / 2) % period - period / 2)


@pytest.mark.parametrize("corners", [4, 6])
def test_an_n_fold_shape_is_oriented_modulo_its_period(corners):
    """Squares (22 px edge, as the crystal's cubes) and hexagons at random angles, pixelated: the face
    normal comes back within 2.5° modulo 360°/N, in (−180°/N, 180°/N]. Second moments cannot do this."""
    period = 360.0 / corners
    rng = np.random.default_rng(corners)
    for _ in range(30):
        truth = rng.uniform(-180, 180)
        mask = polygon_mask((80, 80), 40.2, 39.6, corners, 11 * math.sqrt(2) if corners == 4 else 13, truth)
        m = measure_mask(mask, symmetry=corners)
        assert m is not None
        assert -period / 2 < m.theta_deg <= period / 2
        assert angle_error(m.theta_deg, truth, period) < 2.5, (truth, m.theta_deg)


def test_one_fold_orientation_points_to_the_longer_end():
    """A rod with a knob at one end (a head-tail shape): θ in (−180°, 180°] points towards the knob."""
    for truth in (-150.0, -60.0, 0.0, 35.0, 120.0, 180.0):
        mask = ellipse_mask((160, 160), 80, 80, 30, 8, truth)
        t = math.radians(truth)
        mask |= ellipse_mask((160, 160), 80 + 30 * math.cos(t), 80 + 30 * math.sin(t), 12, 12, 0)
        m = measure_mask(mask, symmetry=1)
        assert m is not None
        assert angle_error(m.theta_deg, truth, 360.0) < 1.0
        axis = measure_mask(mask)
        assert axis is not None
        assert angle_error(axis.theta_deg, truth, 180.0) < 1.0  # the axis, modulo 180°


def test_an_unknown_symmetry_is_refused():
    from lptem.engine.classical import ClassicalConfig  # noqa: PLC0415

    with pytest.raises(ValueError, match=r"symmetry must be one of \(1, 2, 4, 6\)"):
        ClassicalConfig(symmetry=3)


def test_measure_labels_equals_measure_mask_of_each_region():
    rng = np.random.default_rng(3)
    labels = np.zeros((60, 80), dtype=np.int32)
    yy, xx = np.mgrid[:60, :80]
    for k, (x, y, a, b) in enumerate([(15, 15, 8, 4), (50, 20, 5, 9), (30, 45, 10, 10)], start=1):
        labels[((xx - x) / a) ** 2 + ((yy - y) / b) ** 2 <= 1] = k
    labels[rng.random(labels.shape) < 0.05] = 0  # ragged regions
    got = measure_labels(labels, 4, x_offset=7, y_offset=3)
    assert got[3] is None  # label 4 is absent
    for k in (1, 2, 3):
        expected = measure_label(labels, k)
        assert expected is not None
        ours = got[k - 1]
        assert ours is not None
        assert ours.bbox == tuple(v + o for v, o in zip(expected.bbox, (7, 3, 7, 3), strict=True))
        assert (ours.x - 7, ours.y - 3, ours.area_px) == pytest.approx(
            (expected.x, expected.y, expected.area_px)
        )
        assert ours.theta_deg == pytest.approx(expected.theta_deg, abs=1e-9)
