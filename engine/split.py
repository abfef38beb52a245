"""Touching particles apart: markers at the particle scale, then the component shared among them.

A connected component of the thresholded signal may hold several particles (the cubes of a crystal, two
spheres in contact). The detector's denoising (s.d. half the particle radius) fills the gaps between them,
so the split works on a centre-surround response of the frame itself (a difference of Gaussians at a
quarter of the particle radius and at the radius): positive on a particle, negative in a gap. Its local
maxima at least a particle radius apart are the markers, each kept only where the response between it and
every stronger marker nearby falls below ``SPLIT_DEPTH`` of its own peak (the lowest value on the straight
line between them, which bounds the true saddle from below). Each pixel of the component then goes to
its nearest marker, after one step that moves each marker to the centroid of the positive response in its
part (a centre-surround maximum sits off-centre where a neighbour is near). For particles of one size this
is the watershed's partition; scipy's image-foresting-transform watershed was tried and gave parts that
leapt over the dips (ties between equal path costs). A particle much longer than the scale (a rod) can
show a maximum near each end; the detector's ``split`` switch keeps such components whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

SPLIT_DEPTH = 0.5
"""Two maxima are separate particles when the centre-surround response between them falls below this
share of the lower one."""
_LINE_SAMPLES = 16

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


def find_markers(inside: npt.NDArray[np.bool_], contrast: npt.NDArray[np.float32], radius: float) -> Points:
    """Centres of the separate particles on ``inside`` (module docstring), strongest first.

    ``contrast`` is the centre-surround response over the window (:func:`centre_surround`) and ``radius``
    the particle radius, in the window's pixels.
    """
    r = max(1, round(radius))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    peaks = inside & (contrast >= cv2.dilate(contrast, disc)) & (contrast > 0)
    rows, cols = np.nonzero(peaks)
    order = np.argsort(-contrast[rows, cols], kind="stable")
    points = np.column_stack([rows[order], cols[order]]).astype(np.intp)
    if len(points) < 2:
        return points
    heights = contrast[points[:, 0], points[:, 1]].astype(np.float64)
    dips = _lowest_between(contrast, points, reach=4.0 * r)
    kept: list[int] = []
    for i in range(len(points)):
        ceiling = SPLIT_DEPTH * heights[i]
        if all(
            np.hypot(*(points[i] - points[j])) >= r and dips.get((j, i), -np.inf) <= ceiling for j in kept
        ):
            kept.append(i)
    return points[kept]


def centre_surround(
    frame: npt.NDArray[np.generic], window: tuple[slice, slice], radius: float, *, dark: bool
) -> npt.NDArray[np.float32]:
    """Centre-surround response of the frame over ``window`` (frame px), particles positive.

    A difference of Gaussians on the frame itself (s.d. ``radius`` / 4 and ``radius``, px): it keeps the
    gaps that the detector's denoising fills in and is negative in them, so packed neighbours separate;
    its positive part outlines each particle.
    """
    pad = 3 * max(1, math.ceil(radius))
    r0, r1 = max(0, window[0].start - pad), min(frame.shape[0], window[0].stop + pad)
    c0, c1 = max(0, window[1].start - pad), min(frame.shape[1], window[1].stop + pad)
    context = np.asarray(frame[r0:r1, c0:c1], dtype=np.float32)
    if dark:
        context = -context
    step = max(1, int(radius // 8))  # both filters on a grid this much coarser: the same response, cheaper
    if step > 1:
        size = (max(1, context.shape[1] // step), max(1, context.shape[0] // step))
        coarse = cv2.resize(context, size, interpolation=cv2.INTER_AREA)
    else:
        coarse = context
    centre = cv2.GaussianBlur(coarse, (0, 0), max(0.7, radius / 4 / step), borderType=cv2.BORDER_REPLICATE)
    surround = cv2.GaussianBlur(coarse, (0, 0), radius / step, borderType=cv2.BORDER_REPLICATE)
    band = np.asarray(centre - surround, dtype=np.float32)
    if step > 1:
        size = (context.shape[1], context.shape[0])
        band = np.asarray(cv2.resize(band, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    top, left = window[0].start - r0, window[1].start - c0
    rows, cols = window[0].stop - window[0].start, window[1].stop - window[1].start
    return np.asarray(band[top : top + rows, left : left + cols], dtype=np.float32)


def _lowest_between(
    image: npt.NDArray[np.float32], points: Points, reach: float
) -> dict[tuple[int, int], float]:
    """Lowest value on the segment between each pair of points closer than ``reach`` (i < j)."""
    i, j = np.triu_indices(len(points), k=1)
    close = np.hypot(*(points[i] - points[j]).T) < reach
    i, j = i[close], j[close]
    t = np.linspace(0.0, 1.0, _LINE_SAMPLES)[None, :, None]
    line = np.rint(points[i][:, None, :] * (1 - t) + points[j][:, None, :] * t).astype(np.intp)
    lowest = image[line[..., 0], line[..., 1]].min(axis=1)
    return {(int(a), int(b)): float(v) for a, b, v in zip(i, j, lowest, strict=True)}


def basins(
    inside: npt.NDArray[np.bool_],
    markers: Points,
    contrast: npt.NDArray[np.float32],
    local: npt.NDArray[np.float32],
) -> list[Basin]:
    """``inside`` split among ``markers`` (at least two): each pixel to the nearest marker, after the
    markers have moved to the centroids of the positive ``contrast`` in their parts (a centre-surround
    maximum sits off-centre where a neighbour is near). One :class:`Basin` per marker that keeps any
    pixel, with its peak in the signal ``local``."""
    rows, cols = np.nonzero(inside)
    nearest = _nearest(rows, cols, markers.astype(np.float64))
    weight = np.maximum(contrast[rows, cols], 0.0).astype(np.float64)  # one Lloyd step: basin centroids
    n = len(markers)
    mass = np.bincount(nearest, weight, n)
    centroids = np.column_stack(
        [np.bincount(nearest, weight * rows, n), np.bincount(nearest, weight * cols, n)]
    )
    moved = np.where(mass[:, None] > 0, centroids / np.maximum(mass, 1e-12)[:, None], markers)
    labels = np.zeros(inside.shape, dtype=np.int32)
    labels[rows, cols] = _nearest(rows, cols, moved) + 1
    peaks = ndimage.maximum(local, labels, np.arange(1, n + 1))
    out = []
    for k, box in enumerate(ndimage.find_objects(labels, max_label=n)):
        if box is not None:
            r, c = _grown(box[0], local.shape[0]), _grown(box[1], local.shape[1])
            out.append(Basin(r, c, labels[r, c] == k + 1, float(peaks[k])))
    return out


def _nearest(
    rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], points: npt.NDArray[np.float64]
) -> npt.NDArray[np.intp]:
    d2 = (rows[:, None] - points[None, :, 0]) ** 2 + (cols[:, None] - points[None, :, 1]) ** 2
    return np.asarray(np.argmin(d2, axis=1), dtype=np.intp)


def _grown(span: slice, size: int) -> slice:
    """A span one pixel wider on each side (clipped), so that interpolation inside it is exact."""
    return slice(max(0, span.start - 1), min(size, span.stop + 1))
