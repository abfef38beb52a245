"""Particle shapes and their projected thickness along the beam, rendered in small windows.

Every shape lies with its long axis in the image plane at angle θ (from +x towards +y, the measurement
convention of lptem.engine.measure). Sizes are in px here; the simulator converts from nm. Pixels are
supersampled ``SUPERSAMPLE`` x ``SUPERSAMPLE`` so that edges are anti-aliased and sub-pixel positions
are exact on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

ShapeKind = Literal["sphere", "rod", "cube"]
SUPERSAMPLE = 3


@dataclass(frozen=True, slots=True)
class Shape:
    """``kind``: sphere (radius = half the width), rod (spherocylinder of total length ``length_px``
    and radius ``width_px / 2``), or cube (edge ``width_px``, face-on). Lengths in px."""

    kind: ShapeKind
    width_px: float
    length_px: float

    @property
    def bounding_radius_px(self) -> float:
        if self.kind == "sphere":
            return self.width_px / 2
        if self.kind == "rod":
            return self.length_px / 2
        return self.width_px / math.sqrt(2)

    def thickness_px(self, u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Projected thickness (px) at offsets (u along the long axis, v across it) from the centre."""
        r = self.width_px / 2
        if self.kind == "cube":
            inside = (np.abs(u) <= r) & (np.abs(v) <= r)
            return np.where(inside, self.width_px, 0.0)
        if self.kind == "rod":
            half_core = max(0.0, self.length_px / 2 - r)
            u = np.maximum(np.abs(u) - half_core, 0.0)  # distance to the rod's axis segment, along u
        d2 = u * u + v * v
        return 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))


@dataclass(frozen=True, slots=True)
class Footprint:
    """A particle rendered in a window of the frame (or of the world): rows r0.., columns c0.."""

    r0: int
    c0: int
    thickness_px: npt.NDArray[np.float32]
    """Mean projected thickness per pixel (px), averaged over the supersamples."""
    coverage: npt.NDArray[np.float32]
    """Fraction of each pixel the particle covers (0..1)."""


def render(shape: Shape, x: float, y: float, theta_deg: float) -> Footprint:
    """Rasterise ``shape`` centred at (x, y) px (x = column, y = row) in the smallest covering window."""
    reach = shape.bounding_radius_px + 1.0
    r0, r1 = math.floor(y - reach), math.ceil(y + reach) + 1
    c0, c1 = math.floor(x - reach), math.ceil(x + reach) + 1
    s = SUPERSAMPLE
    offsets = (np.arange(s) + 0.5) / s - 0.5  # sub-pixel sample positions around each pixel centre
    rows = (np.arange(r0, r1)[:, None] + offsets[None, :]).ravel() - y
    cols = (np.arange(c0, c1)[:, None] + offsets[None, :]).ravel() - x
    dy, dx = np.meshgrid(rows, cols, indexing="ij")
    t = math.radians(theta_deg)
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    thick = shape.thickness_px(u, v)
    h, w = r1 - r0, c1 - c0
    blocks = thick.reshape(h, s, w, s)
    return Footprint(
        r0=r0,
        c0=c0,
        thickness_px=blocks.mean(axis=(1, 3)).astype(np.float32),
        coverage=(blocks > 0).mean(axis=(1, 3)).astype(np.float32),
    )


def footprint_area_px(shape: Shape) -> float:
    """Exact projected area (px^2) of the shape's footprint."""
    r = shape.width_px / 2
    if shape.kind == "sphere":
        return math.pi * r * r
    if shape.kind == "rod":
        return math.pi * r * r + 2 * r * max(0.0, shape.length_px - 2 * r)
    return shape.width_px**2
