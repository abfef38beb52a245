"""Squares located from their edges (lptem.engine.edges) against rendered, blurred squares."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lptem.engine.api import Measurement
from lptem.engine.edges import refine_squares

SUPERSAMPLE = 8
BACKGROUND, CUBE = 100.0, 60.0


def render(shape, squares, *, blur_px=1.5, noise=0.0, seed=0):
    """A bright-field frame (squares darker than the liquid) of squares given as (x, y, θ°, half-side px),
    area-sampled at 8 x 8 points per pixel, blurred by a Gaussian of ``blur_px`` s.d."""
    ss = SUPERSAMPLE
    yy, xx = np.mgrid[: shape[0] * ss, : shape[1] * ss]
    xx = (xx + 0.5) / ss - 0.5
    yy = (yy + 0.5) / ss - 0.5
    inside = np.zeros(xx.shape, dtype=bool)
    for x, y, theta, half in squares:
        t = math.radians(theta)
        u = (xx - x) * math.cos(t) + (yy - y) * math.sin(t)
        v = -(xx - x) * math.sin(t) + (yy - y) * math.cos(t)
        inside |= (np.abs(u) <= half) & (np.abs(v) <= half)
    fine = np.where(inside, CUBE, BACKGROUND).astype(np.float32)
    image = cv2.resize(fine, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    image = cv2.GaussianBlur(image, (0, 0), blur_px)
    if noise:
        image = image + np.random.default_rng(seed).normal(0, noise, image.shape).astype(np.float32)
    return image.astype(np.float32)


def start(x, y, theta, half):
    """A rough first estimate, as a mask would give it: off by about a pixel and a few degrees, the area
    of a square 1 px larger on each side."""
    side = 2 * half + 2
    return Measurement(x=x + 1.1, y=y - 0.8, theta_deg=theta + 4.0, area_px=side * side, bbox=(0, 0, 1, 1))


@pytest.mark.parametrize("theta", [-40.0, -12.0, 0.0, 7.5, 30.0])
def test_a_lone_square_is_found_from_its_edges(theta):
    image = render((90, 96), [(47.3, 44.6, theta, 11.0)])
    (m,) = refine_squares(image, [start(47.3, 44.6, theta, 11.0)], dark=True)
    assert m.x == pytest.approx(47.3, abs=0.1)
    assert m.y == pytest.approx(44.6, abs=0.1)
    assert m.theta_deg == pytest.approx(theta, abs=0.7)
    assert -45.0 < m.theta_deg <= 45.0


def test_theta_is_reported_modulo_90_degrees():
    image = render((90, 96), [(47.0, 45.0, 44.0, 11.0)])
    rough = start(47.0, 45.0, 44.0, 11.0)  # starts at 48°, the same square as -42°
    (m,) = refine_squares(image, [rough], dark=True)
    assert -45.0 < m.theta_deg <= 45.0
    assert (m.theta_deg - 44.0 + 45.0) % 90.0 - 45.0 == pytest.approx(0.0, abs=0.7)


def test_bright_squares_with_the_bright_polarity():
    image = 2 * BACKGROUND - render((90, 96), [(45.6, 46.2, 15.0, 10.0)])
    (m,) = refine_squares(image, [start(45.6, 46.2, 15.0, 10.0)], dark=False)
    assert (m.x, m.y) == pytest.approx((45.6, 46.2), abs=0.1)
    assert m.theta_deg == pytest.approx(15.0, abs=0.7)


@pytest.mark.parametrize("offset", [-1.0, -0.5, 0.5, 1.0])
def test_a_close_neighbour_hardly_moves_the_centre(offset):
    """Two squares 3 px apart (twice the blur), the left one moved by ``offset`` towards (+) or away from
    the right one (gaps 2-4 px): both refined centres within 0.15 px; the blurred gap does not pull them
    along (a mask cut from the blurred signal fills the gap)."""
    half, gap = 11.0, 3.0
    left = 40.0 + offset
    right = 40.0 + 2 * half + gap
    image = render((80, 120), [(left, 40.0, 0.0, half), (right, 40.0, 0.0, half)])
    measured = refine_squares(image, [start(left, 40.0, 0.0, half), start(right, 40.0, 0.0, half)], dark=True)
    assert measured[0].x == pytest.approx(left, abs=0.15)
    assert measured[1].x == pytest.approx(right, abs=0.15)


def test_noise_leaves_the_centre_within_a_tenth_of_the_side():
    rng = np.random.default_rng(5)
    errors = []
    for seed in range(10):
        x, y, theta = 48 + rng.uniform(-1, 1), 45 + rng.uniform(-1, 1), rng.uniform(-40, 40)
        image = render((90, 96), [(x, y, theta, 11.0)], noise=8.0, seed=seed)  # contrast 40, noise s.d. 8
        (m,) = refine_squares(image, [start(x, y, theta, 11.0)], dark=True)
        errors.append(math.hypot(m.x - x, m.y - y))
    assert np.median(errors) < 0.5
    assert max(errors) < 2.2


def test_origin_places_a_crop_in_the_frame():
    image = render((90, 96), [(47.3, 44.6, 10.0, 11.0)])
    crop = image[20:80, 15:90]
    rough = start(47.3, 44.6, 10.0, 11.0)
    (m,) = refine_squares(crop, [rough], dark=True, origin=(15, 20))
    assert (m.x, m.y) == pytest.approx((47.3, 44.6), abs=0.1)


def test_an_estimate_without_a_square_is_kept():
    """On a flat frame there are no edges: the refinement must not wander off; the input comes back."""
    flat = np.full((90, 96), BACKGROUND, dtype=np.float32)
    flat[:, 60:] = CUBE  # one straight edge far from the estimate's sides
    rough = start(30.0, 45.0, 0.0, 11.0)
    (m,) = refine_squares(flat, [rough], dark=True)
    assert math.hypot(m.x - rough.x, m.y - rough.y) <= 0.35 * math.sqrt(rough.area_px) / 2


def test_nothing_in_nothing_out():
    assert refine_squares(np.zeros((10, 10), np.float32), [], dark=True) == []
