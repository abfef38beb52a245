"""Square particles (nanocubes seen face-on) located from their four edges.

A mask cut from a denoised signal follows the blur: where two cubes almost touch, the blurred gap fills,
the masks grow into it and the centroid moves towards the neighbour, so a cube's excursion from its lattice
site is over-reported (benchmarks/crystal_error.py: 1.2 x). Here each side of a square is found in the
frame's own pixels instead: intensity profiles across the side, averaged along its middle part (60 % of
each half-side, away from the rounded corners) in ``BINS`` bins, and the edge taken where the profile
falls fastest (parabolic sub-sample peak of the gradient). Opposite edges give the centre along each axis,
the mean half-distance the half-side, and the edges' tilt along the side a rotation. A few iterations
re-sample at the refined pose. A square whose profiles would leave the image (cut by the frame's edge),
or that the refinement moves by more than a third of its half-side, keeps its first estimate.

The steepest fall of a blurred edge is where the edge is for any symmetric blur; a neighbour's facing edge
a few blur widths away pulls it inwards slightly (the residual: benchmarks/crystal_error.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from lptem.engine.api import Measurement

BINS = 4
"""Bins along each side: the edge's position in each gives its tilt."""
ALONG = 0.6
"""Profiles cover this share of each half-side about its middle."""
REACH_PX = 4.0
"""Profiles run this far either side of the current edge estimate, px."""
STEP_PX = 0.5
"""Sample spacing along a profile, px."""
SAMPLES_PER_BIN = 4
ITERATIONS = 3
FLANK = 0.25
"""Edges are placed where the gradient, walking inwards from its steepest point, has risen to this share of
it: a neighbour's facing edge bends the gradient's minimum towards the cube (by its gradient's slope over
the minimum's curvature) but hardly moves the steep inner flank. The flank lies a fixed distance inside
the edge for every side, so opposite sides' flanks give the centre and their tilt the rotation; the
half-side comes from the minima."""
MAX_SHIFT = 0.35
"""A refinement that moves the centre by more than this share of the half-side is not trusted: the first
estimate is kept."""

F64 = npt.NDArray[np.float64]


def refine_squares(
    image: npt.NDArray[np.float32],
    measurements: Sequence[Measurement],
    *,
    dark: bool,
    origin: tuple[int, int] = (0, 0),
) -> list[Measurement]:
    """``measurements`` of square particles with centre and θ (degrees, a side's normal, modulo 90°) taken
    from their edges in ``image`` (float32, unsmoothed; top-left pixel at ``origin`` = (column, row) of
    the frame). The half-side starts at half the square root of the mask's area. Area and bbox unchanged."""
    if not measurements:
        return []
    x0 = np.array([m.x for m in measurements]) - origin[0]
    y0 = np.array([m.y for m in measurements]) - origin[1]
    theta0 = np.array([m.theta_deg for m in measurements])
    half0 = np.sqrt([m.area_px for m in measurements]) / 2
    x, y, theta, half = x0, y0, theta0, half0
    inside = np.ones(len(x), dtype=bool)
    for _ in range(ITERATIONS):
        inside &= _profiles_inside(image.shape, x, y, half)
        peaks, flanks = edge_offsets(image, x, y, theta, half, dark=dark)
        x, y, theta, half = _moved(x, y, theta, half, flanks)
        half = half + (peaks - flanks).mean(axis=(1, 2))
    trusted = inside & (np.hypot(x - x0, y - y0) <= MAX_SHIFT * half0) & np.isfinite(x + y + theta)
    return [
        replace(m, x=float(xi) + origin[0], y=float(yi) + origin[1], theta_deg=_wrapped(float(ti)))
        if ok
        else m
        for m, xi, yi, ti, ok in zip(measurements, x, y, theta, trusted, strict=True)
    ]


def edge_offsets(
    image: npt.NDArray[np.float32], x: F64, y: F64, theta_deg: F64, half: F64, *, dark: bool
) -> tuple[F64, F64]:
    """(particles, 4 sides, BINS) where each side's edge lies, px along its outward normal, relative to
    ``half`` from the centre (x, y). Side k's normal points at θ + 90° k."""
    n = len(x)
    u = np.arange(-REACH_PX, REACH_PX + STEP_PX / 2, STEP_PX)
    normal = np.radians(theta_deg)[:, None] + np.arange(4)[None, :] * (math.pi / 2)
    nx, ny = np.cos(normal)[..., None, None], np.sin(normal)[..., None, None]  # (n, 4, 1, 1)
    s = _along(half)[:, None, :, None]  # (n, 1, BINS * SAMPLES_PER_BIN, 1)
    out = half[:, None, None, None] + u  # (n, 1, 1, U)
    px = x[:, None, None, None] + out * nx - s * ny
    py = y[:, None, None, None] + out * ny + s * nx
    values = cv2.remap(
        image,
        px.reshape(n, -1).astype(np.float32),
        py.reshape(n, -1).astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).reshape(n, 4, BINS, SAMPLES_PER_BIN, len(u))
    profiles = values.mean(axis=3, dtype=np.float64) * (-1.0 if dark else 1.0)  # particle positive
    gradient = np.diff(profiles, axis=-1) / STEP_PX
    at = (u[:-1] + u[1:]) / 2
    return _steepest_fall(gradient, at), _inner_flank(gradient, at)


def _inner_flank(gradient: F64, at: F64) -> F64:
    """Where each gradient profile, walking inwards from its minimum, first rises above FLANK x that
    minimum (linear between samples)."""
    k = np.argmin(gradient, axis=-1)[..., None]
    low = np.take_along_axis(gradient, k, axis=-1)
    index = np.arange(gradient.shape[-1])
    above = (gradient > FLANK * low) & (index < k)
    j = np.where(above.any(axis=-1), gradient.shape[-1] - 1 - np.argmax(above[..., ::-1], axis=-1), 0)[
        ..., None
    ]
    j = np.minimum(j, k - 1).clip(0)
    g0 = np.take_along_axis(gradient, j, axis=-1)[..., 0]
    g1 = np.take_along_axis(gradient, j + 1, axis=-1)[..., 0]
    level = FLANK * low[..., 0]
    fraction = np.clip((g0 - level) / np.where(g0 != g1, g0 - g1, 1.0), 0.0, 1.0)
    return np.asarray(at[j[..., 0]] + fraction * STEP_PX, dtype=np.float64)


def sample_reach_px(area_px: float) -> float:
    """How far from a first estimate (mask of ``area_px``) :func:`refine_squares` samples the image while
    the square may still be trusted, px: the margin an image crop needs around it (the centre may move
    by ``MAX_SHIFT`` half-sides; profiles run ``REACH_PX`` past a side, √2 times that at the corners, and
    the half-side may grow by half)."""
    half = math.sqrt(area_px) / 2
    return MAX_SHIFT * half + math.sqrt(2.0) * (1.5 * half + REACH_PX) + 1.0


def _profiles_inside(shape: tuple[int, ...], x: F64, y: F64, half: F64) -> npt.NDArray[np.bool_]:
    """Whether every profile of each square stays in the image (a square cut by the frame's edge has no
    edge there to find)."""
    reach = np.sqrt(2.0) * (half + REACH_PX) + 1.0  # the farthest sample, whatever θ
    inside = (x - reach >= 0) & (y - reach >= 0) & (x + reach <= shape[1] - 1) & (y + reach <= shape[0] - 1)
    return np.asarray(inside, dtype=bool)


def _along(half: F64) -> F64:
    """(n, BINS * SAMPLES_PER_BIN) positions along a side from its middle, px (bins in order)."""
    return np.asarray(
        np.linspace(-ALONG, ALONG, BINS * SAMPLES_PER_BIN)[None, :] * half[:, None], dtype=np.float64
    )


def _bin_centres(half: F64) -> F64:
    """(n, BINS) mean position of each bin along its side, px."""
    return np.asarray(_along(half).reshape(len(half), BINS, SAMPLES_PER_BIN).mean(axis=2), dtype=np.float64)


def _steepest_fall(gradient: F64, at: F64) -> F64:
    """Where each gradient profile (last axis, sampled at ``at``) is most negative, with a parabola
    through the three samples about the minimum."""
    k = np.clip(np.argmin(gradient, axis=-1), 1, gradient.shape[-1] - 2)[..., None]
    g0, g1, g2 = (np.take_along_axis(gradient, k + d, axis=-1)[..., 0] for d in (-1, 0, 1))
    curvature = g0 - 2 * g1 + g2
    safe = np.where(curvature > 0, curvature, 1.0)
    offset = np.where(curvature > 0, np.clip(0.5 * (g0 - g2) / safe, -1.0, 1.0), 0.0)
    return np.asarray(at[k[..., 0]] + offset * STEP_PX, dtype=np.float64)


def _moved(x: F64, y: F64, theta_deg: F64, half: F64, edges: F64) -> tuple[F64, F64, F64, F64]:
    """The pose the edges say: centre midway between opposite edges, half-side their mean distance, θ
    turned by the sides' median tilt (an edge that moves by -δ·s at position s along the side turned
    by δ)."""
    mean = edges.mean(axis=2)  # (n, 4)
    along_0 = (mean[:, 0] - mean[:, 2]) / 2
    along_1 = (mean[:, 1] - mean[:, 3]) / 2
    t = np.radians(theta_deg)
    x = x + along_0 * np.cos(t) - along_1 * np.sin(t)
    y = y + along_0 * np.sin(t) + along_1 * np.cos(t)
    s = _bin_centres(half)[:, None, :]
    tilt = ((edges - mean[..., None]) * s).sum(axis=2) / (s * s).sum(axis=2)
    theta_deg = theta_deg - np.degrees(np.median(tilt, axis=1))
    return x, y, theta_deg, half + mean.mean(axis=1)


def _wrapped(theta_deg: float) -> float:
    """θ of a square in (-45, 45]°."""
    return 45.0 - (45.0 - theta_deg) % 90.0
