"""Touching particles apart: markers at the particle scale, then the component shared among them.

A connected component of the thresholded signal may hold several particles (the cubes of a crystal, two
spheres in contact). The detector's denoising (s.d. half the particle radius) fills the gaps between them,
so the split works on a centre-surround response of the frame itself (a difference of Gaussians at a
quarter of the particle radius and at the radius): positive on a particle, negative in a gap. Its local
maxima at least a particle radius apart are the markers. A weaker marker is kept only if, between it and
every stronger one within ``REACH`` radii, the response falls below ``SPLIT_DEPTH`` of the lower end: the
response is read along the segment joining them and averaged across a strip ``STRIP`` radii to each
side (a gap crosses the segment, so the average keeps it while the noise shrinks). Each pixel of the
component then goes to its nearest marker, after one step that moves each marker to the centroid of the
positive response in its part (a centre-surround maximum sits off-centre where a neighbour is near); a
split whose pieces are much larger than a particle is dropped (``PIECE_DISCS``).

In a crystal the maxima fail where the gaps are narrower than the noise lets the band show them (cubes
2 px apart): a component of ``CRYSTAL_DISCS`` particle discs or more is searched for a lattice
(lptem.engine.lattice), and where one is found its sites are the markers (a particle is expected at each
whether or not a dip shows), with the maxima off the sites compared as above. A tracker's seed (below)
within a radius of a site is that site's particle and gives way to it: a site is where the crystal puts
a particle, a seed only where the particle was predicted to be.

It needs the particle scale. A particle much larger than the radius has centre-surround maxima all along
its rim and would be cut into pieces, so the detector splits only where the radius is known (given,
estimated, or an object's own from its prompt box); a rod, longer than its scale, shows a maximum near
each end, so an object prompted with an elongated box is never split. A tracker that knows several of
its objects to lie in one component seeds the split with their predicted positions (at any scale), so
that identity survives contact even where the maxima alone would not separate them; a maximum is a
particle besides the seeds only where a dip parts it from each seed. For particles of one size the
nearest-marker partition is the watershed's; scipy's image-foresting-transform watershed was tried and
gave parts that leapt over the dips (ties between equal path costs). The first partition, at the
markers' whole pixels, comes from OpenCV's distance transform with labels (a 5 x 5 approximation of the
Euclidean distance, about 20x faster than a k-d tree per pixel); the final one, at the moved sub-pixel
markers, from a k-d tree: rounding those cost recall in a crystal with 2 px gaps (0.833 against 0.846
over 100 frames with the radius given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from lptem.engine.lattice import find_lattice, lattice_sites

SPLIT_DEPTH = 0.5
"""Two maxima are separate particles when the centre-surround response between them falls below this
share of the lower one."""
REACH = 4.0
"""Maxima farther apart than this many radii are not compared (particles in between separate them)."""
STRIP = 0.8
"""Half-width of the strip the response is averaged across, in radii."""
PIECE_DISCS = 3.0
"""A split is kept only if its pieces are particle-sized: median area at most this many particle discs
(a particle much larger than the scale would fall into a few large pieces)."""
CRYSTAL_DISCS = 6.0
"""A component is looked at for a crystal from this many particle discs up."""
PITCH_RADII = (1.2, 4.0)
"""A crystal's lattice pitch lies between these many particle radii (touching spheres: 2)."""
_LINE_SAMPLES = 16
_STRIP_SAMPLES = 9

Points = npt.NDArray[np.intp]
"""(k, 2) array of (row, col) positions in a window."""


@dataclass(frozen=True, slots=True)
class Basin:
    """One particle of a component: its pixels within a crop of the window and its peak."""

    rows: slice
    cols: slice
    mask: npt.NDArray[np.bool_]
    """Its pixels in ``window[rows, cols]`` (its bounding box grown by a pixel)."""
    peak: float
    """Largest signal on it."""


def centre_surround(
    frame: npt.NDArray[np.generic], window: tuple[slice, slice], radius: float, *, dark: bool
) -> npt.NDArray[np.float32]:
    """The frame over ``window`` (frame px), particles made positive, smoothed at a quarter of the
    particle ``radius`` (px) minus the same smoothed at the radius.

    Both Gaussians run on a grid ``radius`` / 8 coarser (at least 1 px): the same response, cheaper.
    """
    pad = 3 * max(1, math.ceil(radius))
    r0, r1 = max(0, window[0].start - pad), min(frame.shape[0], window[0].stop + pad)
    c0, c1 = max(0, window[1].start - pad), min(frame.shape[1], window[1].stop + pad)
    context = np.asarray(frame[r0:r1, c0:c1], dtype=np.float32)
    if dark:
        context = -context
    step = max(1, int(radius // 8))
    coarse = context
    if step > 1:
        size = (max(1, context.shape[1] // step), max(1, context.shape[0] // step))
        coarse = np.asarray(cv2.resize(context, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
    band = _gaussian(coarse, max(0.7, radius / 4 / step)) - _gaussian(coarse, radius / step)
    if step > 1:
        size = (context.shape[1], context.shape[0])
        band = np.asarray(cv2.resize(band, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    top, left = window[0].start - r0, window[1].start - c0
    rows, cols = window[0].stop - window[0].start, window[1].stop - window[1].start
    return np.asarray(band[top : top + rows, left : left + cols], dtype=np.float32)


def split_component(
    inside: npt.NDArray[np.bool_],
    local: npt.NDArray[np.float32],
    band: npt.NDArray[np.float32],
    radius: float,
    *,
    seeds: Points | None = None,
    find: bool = True,
) -> list[Basin] | None:
    """The particles of a component, or None when it holds one: ``inside``, the detector's signal
    ``local`` and the centre-surround ``band`` on the window's grid, ``radius`` in its pixels.

    ``seeds`` are where a tracker expects its objects in the component (each one particle); two seeds
    closer than a radius cannot both be particles (two objects on one), so neither is used. With ``find``
    the sites of a crystal's lattice are particles, a seed within a radius of a site giving way to it,
    and so are the maxima of the band farther than a radius from every seed and site, and apart from
    each by a dip as between two maxima (newcomers).
    """
    none = np.empty((0, 2), dtype=np.intp)
    known = none if seeds is None else _apart(seeds, radius)
    sites = crystal_sites(inside, band, radius) if find else none
    known = np.vstack([sites, _farther_than(known, sites, radius)]).astype(np.intp)
    # in a crystal only the maxima off its sites are compared (the rest cost time and change nothing)
    maxima = find_markers(inside, band, radius, away_from=sites) if find else none
    markers = (
        np.vstack([known, _newcomers(maxima, known, band, radius)]).astype(np.intp) if len(known) else maxima
    )
    if len(markers) < 2:
        return None
    parts = basins(inside, markers, band, local)
    if len(known) < 2 and np.median([p.mask.sum() for p in parts]) > PIECE_DISCS * math.pi * radius**2:
        return None
    return parts


def crystal_sites(inside: npt.NDArray[np.bool_], band: npt.NDArray[np.float32], radius: float) -> Points:
    """The lattice sites of a component of at least ``CRYSTAL_DISCS`` particle discs whose band shows a
    lattice with a pitch of ``PITCH_RADII`` radii (lptem.engine.lattice); none otherwise."""
    none = np.empty((0, 2), dtype=np.intp)
    if inside.sum() < CRYSTAL_DISCS * math.pi * radius**2:
        return none
    low, high = PITCH_RADII
    lattice = find_lattice(band, inside, min_px=low * radius, max_px=high * radius)
    return none if lattice is None else lattice_sites(band, inside, lattice)


def _farther_than(points: Points, others: Points, distance: float) -> Points:
    """The ``points`` at least ``distance`` from every one of ``others``."""
    if len(points) == 0 or len(others) == 0:
        return points
    gaps = np.hypot(*(points[:, None, :] - others[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    kept: Points = points[gaps >= distance]
    return kept


def find_markers(
    inside: npt.NDArray[np.bool_],
    band: npt.NDArray[np.float32],
    radius: float,
    *,
    away_from: Points | None = None,
) -> Points:
    """Centres of the separate particles on ``inside`` (module docstring), strongest first; ``radius`` in
    the window's pixels. Maxima within a radius of one of ``away_from`` are left out before they are
    compared."""
    r = max(1, round(radius))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    peaks = inside & (band >= cv2.dilate(band, disc)) & (band > 0)
    rows, cols = np.nonzero(peaks)
    order = np.argsort(-band[rows, cols], kind="stable")
    points = np.column_stack([rows[order], cols[order]]).astype(np.intp)
    if away_from is not None:
        points = _farther_than(points, away_from, radius)
    if len(points) < 2:
        return points
    pairs = _pairs_within(points, REACH * r)
    ends, lowest = _profiles(band, points, pairs, STRIP * r)
    apart = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    joined = apart < r  # too close to be two particles, or ...
    one = lowest > SPLIT_DEPTH * ends  # ... no dip between them
    joined[pairs[0][one], pairs[1][one]] = True
    kept = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):  # strongest first: a weaker one joined to a kept one is not a particle
        kept[i] = not np.any(kept[:i] & joined[:i, i])
    return points[kept]


def _apart(seeds: Points, radius: float) -> Points:
    """The ``seeds`` with no other seed within ``radius``."""
    if len(seeds) < 2:
        return seeds
    apart = np.asarray(np.hypot(*(seeds[:, None, :] - seeds[None, :, :]).transpose(2, 0, 1)), np.float64)
    np.fill_diagonal(apart, np.inf)
    kept: Points = seeds[apart.min(axis=1) >= radius]
    return kept


def _newcomers(markers: Points, seeds: Points, band: npt.NDArray[np.float32], radius: float) -> Points:
    """The ``markers`` that are particles besides the ``seeds``: at least a radius from every seed, and
    apart from each seed within ``REACH`` radii by a dip as between two markers (a marker off a seed's
    particle centre, with the seed off it the other way, is the same particle)."""
    if len(markers) == 0:
        return markers
    markers = _farther_than(markers, seeds, radius)
    points = np.vstack([markers, seeds])
    i, j = _pairs_within(points, REACH * max(1, round(radius)))
    across = (i < len(markers)) & (j >= len(markers))  # a marker and a seed
    i, j = i[across], j[across]
    ends, lowest = _profiles(band, points, (i, j), STRIP * max(1, round(radius)))
    joined = np.zeros(len(markers), dtype=bool)
    joined[i[lowest > SPLIT_DEPTH * ends]] = True
    return markers[~joined]


def _pairs_within(points: Points, reach: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    i, j = np.triu_indices(len(points), k=1)
    close = np.hypot(*(points[i] - points[j]).T) < reach
    return i[close], j[close]


def _profiles(
    image: npt.NDArray[np.float32],
    points: Points,
    pairs: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    half_width: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """For each pair, ``image`` along the segment between its points averaged across a strip
    ``half_width`` to each side: the lower of its two ends and its lowest value."""
    i, j = pairs
    a, b = points[i].astype(np.float64), points[j].astype(np.float64)
    along = b - a
    normal = np.column_stack([-along[:, 1], along[:, 0]]) / np.maximum(np.hypot(*along.T), 1e-9)[:, None]
    t = np.linspace(0.0, 1.0, _LINE_SAMPLES)[None, :, None, None]
    u = np.linspace(-half_width, half_width, _STRIP_SAMPLES)[None, None, :, None]
    at = a[:, None, None, :] + t * along[:, None, None, :] + u * normal[:, None, None, :]
    rows = np.clip(np.rint(at[..., 0]).astype(np.intp), 0, image.shape[0] - 1)
    cols = np.clip(np.rint(at[..., 1]).astype(np.intp), 0, image.shape[1] - 1)
    profile = image[rows, cols].astype(np.float64).mean(axis=2)
    return np.minimum(profile[:, 0], profile[:, -1]), profile.min(axis=1)


def basins(
    inside: npt.NDArray[np.bool_],
    markers: Points,
    band: npt.NDArray[np.float32],
    local: npt.NDArray[np.float32],
) -> list[Basin]:
    """``inside`` split among ``markers`` (at least two): each pixel to the nearest marker, after the
    markers have moved to the centroids of the positive ``band`` in their parts. One :class:`Basin` per
    marker that keeps any pixel, with its peak in the signal ``local``."""
    rows, cols = np.nonzero(inside)
    nearest = _nearest(inside.shape, markers)[rows, cols]
    weight = np.maximum(band[rows, cols], 0.0).astype(np.float64)
    n = len(markers)
    mass = np.bincount(nearest, weight, n)
    sums = np.column_stack([np.bincount(nearest, weight * rows, n), np.bincount(nearest, weight * cols, n)])
    moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], markers)
    labels = np.zeros(inside.shape, dtype=np.int32)
    _, index = cKDTree(moved).query(np.column_stack([rows, cols]))  # sub-pixel markers: exact distances
    labels[rows, cols] = np.asarray(index, dtype=np.intp) + 1
    out = []
    for k, box in enumerate(ndimage.find_objects(labels, max_label=n)):
        if box is not None:
            r, c = _grown(box[0], local.shape[0]), _grown(box[1], local.shape[1])
            mask = labels[r, c] == k + 1
            out.append(Basin(r, c, mask, float(local[r, c][mask].max())))
    return out


def _gaussian(image: npt.NDArray[np.float32], sigma: float) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE), np.float32)


def _nearest(shape: tuple[int, ...], points: Points) -> npt.NDArray[np.intp]:
    """Per pixel of a ``shape`` window, the index of the nearest of ``points`` (distinct pixels inside
    it): OpenCV's distance transform with labels (5 x 5 mask, a close approximation of the Euclidean
    distance; about 20x faster than a k-d tree query per pixel)."""
    rows = np.clip(points[:, 0], 0, shape[0] - 1)
    cols = np.clip(points[:, 1], 0, shape[1] - 1)
    source = np.ones(shape, dtype=np.uint8)
    source[rows, cols] = 0
    _, found = cv2.distanceTransformWithLabels(
        source, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    labels = np.asarray(found, dtype=np.intp)
    to_point = np.zeros(int(labels.max()) + 1, dtype=np.intp)
    to_point[labels[rows, cols]] = np.arange(len(points))  # a shared pixel goes to the last point there
    return to_point[labels]


def _grown(span: slice, size: int) -> slice:
    """A span one pixel wider on each side (clipped), so that interpolation inside it is exact."""
    return slice(max(0, span.start - 1), min(size, span.stop + 1))
