"""Rectangles and discs of the simulated world: particle windows, their overlaps, and collisions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lptem.engine.sim.shapes import Footprint


def separate(
    xy: npt.NDArray[np.float64],
    radii: npt.NDArray[np.float64],
    world: npt.NDArray[np.float64],
    passes: int = 3,
) -> npt.NDArray[np.float64]:
    """Push overlapping discs apart along their centre line (equal shares), a few passes. Distances
    follow the periodic world's minimum-image convention."""
    xy = xy.copy()
    contact = radii[:, None] + radii[None, :]
    for _ in range(passes):
        delta = xy[:, None, :] - xy[None, :, :]
        delta -= world * np.round(delta / world)
        dist = np.hypot(delta[..., 0], delta[..., 1])
        np.fill_diagonal(dist, np.inf)
        overlap = np.clip(contact - dist, 0.0, None)
        if not overlap.any():
            break
        direction = delta / np.maximum(dist, 1e-9)[..., None]
        xy += 0.5 * (overlap[..., None] * direction).sum(axis=1)
    return xy


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def expanded(f: Footprint, pad: int) -> tuple[int, int, int, int]:
    """The footprint's window grown by ``pad`` on every side (not clipped to the frame)."""
    h, w = f.thickness_px.shape
    return (f.r0 - pad, f.r0 + h + pad, f.c0 - pad, f.c0 + w + pad)


def intersection(
    rect: tuple[int, int, int, int], area: tuple[int, int, int, int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of ``rect`` ∩ ``area`` in area coordinates (offset by the area's origin) and in rect's."""
    r0, r1 = max(rect[0], area[0]), min(rect[1], area[1])
    c0, c1 = max(rect[2], area[2]), min(rect[3], area[3])
    in_area = (slice(r0 - area[0], r1 - area[0]), slice(c0 - area[2], c1 - area[2]))
    in_rect = (slice(r0 - rect[0], r1 - rect[0]), slice(c0 - rect[2], c1 - rect[2]))
    return in_area, in_rect


def merge(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping rectangles (r0, r1, c0, c1) until all are disjoint."""
    rects = list(rects)
    merged = True
    while merged:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                if overlap(a, b):
                    rects[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return rects


def clip(
    f: Footprint, rect: tuple[int, int, int, int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices (into the footprint, into the rect) of their intersection, or None."""
    h, w = f.thickness_px.shape
    r0, r1 = max(f.r0, rect[0]), min(f.r0 + h, rect[1])
    c0, c1 = max(f.c0, rect[2]), min(f.c0 + w, rect[3])
    if r0 >= r1 or c0 >= c1:
        return None
    inside = (slice(r0 - f.r0, r1 - f.r0), slice(c0 - f.c0, c1 - f.c0))
    target = (slice(r0 - rect[0], r1 - rect[0]), slice(c0 - rect[2], c1 - rect[2]))
    return inside, target


def coverage_inside(f: Footprint, shape: tuple[int, int]) -> float:
    window = clip(f, (0, shape[0], 0, shape[1]))
    if window is None:
        return 0.0
    return float(f.coverage[window[0]].sum())
