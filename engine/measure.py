"""Mask measurements shared by every engine: sub-pixel centroid, orientation, area, bounding box.

Definitions (image moments of the binary mask, pixel centres at integer coordinates):

* area ``A = Σ 1`` (px²);
* centroid ``x̄ = Σ x / A`` (column), ``ȳ = Σ y / A`` (row), origin at the centre of pixel (0, 0);
* central second moments ``μ20 = Σ (x − x̄)² / A``, ``μ02 = Σ (y − ȳ)² / A``, ``μ11 = Σ (x − x̄)(y − ȳ) / A``;
* orientation ``θ = ½ atan2(2 μ11, μ20 − μ02)``: the angle of the major axis from +x towards +y, in
  degrees in (−90, 90]. Rows grow downwards on screen, so positive θ is clockwise as displayed. A shape with
  no preferred axis (a disc) has θ = 0. Relation to ``skimage.measure.regionprops(...).orientation`` (ω,
  radians, from the row axis): ``θ = 90° − degrees(ω)`` wrapped into (−90, 90].
* bbox ``(x0, y0, x1, y1)`` with ``x1``, ``y1`` exclusive (one past the last column / row).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from lptem.engine.api import Measurement


def orientation_deg(mu20: float, mu02: float, mu11: float) -> float:
    """Major-axis angle in degrees in (−90, 90] from normalised central moments (see module doc)."""
    theta = 0.5 * math.degrees(math.atan2(2.0 * mu11, mu20 - mu02))
    return 90.0 if theta <= -90.0 else theta


def measure_mask(
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8], x_offset: int = 0, y_offset: int = 0
) -> Measurement | None:
    """Measure a binary mask (a crop whose top-left pixel sits at column ``x_offset``, row ``y_offset``).

    Returns None for an empty mask.
    """
    crop = mask.view(np.uint8)
    m = cv2.moments(crop, binaryImage=True)
    area = m["m00"]
    if area <= 0:
        return None
    xc = m["m10"] / area
    yc = m["m01"] / area
    theta = orientation_deg(m["mu20"] / area, m["mu02"] / area, m["mu11"] / area)
    rows = np.flatnonzero(crop.any(axis=1))
    cols = np.flatnonzero(crop.any(axis=0))
    bbox = (
        x_offset + int(cols[0]),
        y_offset + int(rows[0]),
        x_offset + int(cols[-1]) + 1,
        y_offset + int(rows[-1]) + 1,
    )
    return Measurement(x=x_offset + xc, y=y_offset + yc, theta_deg=theta, area_px=float(area), bbox=bbox)


def measure_label(labels: npt.NDArray[np.integer], label: int) -> Measurement | None:
    """Measure the pixels of ``labels == label`` in a full label map (None if the label is absent)."""
    rows, cols = np.nonzero(labels == label)
    if rows.size == 0:
        return None
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    return measure_mask(labels[r0:r1, c0:c1] == label, x_offset=c0, y_offset=r0)
