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

Shapes with more symmetry (``symmetry`` N = 1, 4, 6; 2 is the default above) use a complex moment of the
mask's pixels about the centroid, ``z = (x − x̄) + i (y − ȳ)``, since second moments cannot tell a square's
or a hexagon's orientation (their inertia tensor is isotropic):

* N = 4, 6: ``c = Σ zᴺ`` (weights the corners, r^N); ``θ = arg(−c) / N``, the direction of a face normal
  (for a square: the normal of one edge; a square with edges along x and y has θ = 0), in
  (−180°/N, 180°/N]: the orientation modulo 360°/N.
* N = 1: ``c = Σ z |z|²`` (a third-order moment) points along the tail, where the mask reaches further
  from its centroid; ``θ = arg(−c)`` in (−180°, 180°] points the other way, to the heavier end (for a rod
  with a knob at one end: the knob). A shape symmetric under a half turn has no such end: θ is arbitrary.
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


SYMMETRIES = (1, 2, 4, 6)
"""Rotational symmetries an orientation can be measured for (θ is reported modulo 360° / N)."""


def check_symmetry(symmetry: int) -> None:
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry must be one of {SYMMETRIES} (n-fold), got {symmetry}")


def symmetry_moment(
    dx: npt.NDArray[np.float64],
    dy: npt.NDArray[np.float64],
    symmetry: int,
    weights: npt.NDArray[np.floating] | None = None,
) -> complex:
    """The complex moment that orients an N-fold shape (module doc) from its pixels' offsets (px) about
    the centroid, each pixel counted once or with its ``weights`` (e.g. the particle's contrast)."""
    z = dx + 1j * dy
    terms = z * (dx * dx + dy * dy) if symmetry == 1 else z**symmetry
    return complex(np.sum(terms if weights is None else weights * terms))


def symmetry_angle_deg(moment: complex, symmetry: int) -> float:
    """θ (degrees) of an N-fold shape (N = 1, 4, 6) from :func:`symmetry_moment`; see the module doc."""
    if symmetry == 1:
        theta = math.degrees(math.atan2(-moment.imag, -moment.real))
        return 180.0 if theta <= -180.0 else theta
    period = 360.0 / symmetry
    theta = math.degrees(math.atan2(-moment.imag, -moment.real)) / symmetry
    return theta + period if theta <= -period / 2 else theta


def measure_mask(
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8],
    x_offset: int = 0,
    y_offset: int = 0,
    symmetry: int = 2,
) -> Measurement | None:
    """Measure a binary mask (a crop whose top-left pixel sits at column ``x_offset``, row ``y_offset``);
    θ for an N-fold ``symmetry`` (module doc).

    Returns None for an empty mask.
    """
    crop = mask.view(np.uint8)
    m = cv2.moments(crop, binaryImage=True)
    area = m["m00"]
    if area <= 0:
        return None
    xc = m["m10"] / area
    yc = m["m01"] / area
    if symmetry == 2:
        theta = orientation_deg(m["mu20"] / area, m["mu02"] / area, m["mu11"] / area)
    else:
        rows, cols = np.nonzero(crop)
        moment = symmetry_moment(cols.astype(np.float64) - xc, rows.astype(np.float64) - yc, symmetry)
        theta = symmetry_angle_deg(moment, symmetry)
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


def contrast_orientation(
    image: npt.NDArray[np.generic], m: Measurement, symmetry: int, *, dark: bool
) -> float:
    """θ (degrees, modulo 360°/``symmetry``) of a particle measured at ``m`` from the frame's own pixels.

    A detector's mask is cut from a denoised signal whose blur rounds a cube's corners; the frame keeps
    them. Weights are the particle's contrast (``dark``: darker than its surroundings), lightly smoothed
    (1 px), in a disc of 1.2 x its half-width (from its area), taken about the disc's mean so that the
    background level cancels.
    """
    reach = 1.2 * math.sqrt(m.area_px) / 2
    half = math.ceil(reach) + 2
    cx, cy = round(m.x), round(m.y)
    r0, r1 = max(0, cy - half), min(image.shape[0], cy + half + 1)
    c0, c1 = max(0, cx - half), min(image.shape[1], cx + half + 1)
    crop = np.asarray(cv2.GaussianBlur(np.asarray(image[r0:r1, c0:c1], np.float32), (0, 0), 1.0))
    rows, cols = np.nonzero(np.ones(crop.shape, dtype=bool))  # every pixel, row-major
    dx = np.asarray(cols + (c0 - m.x), dtype=np.float64)
    dy = np.asarray(rows + (r0 - m.y), dtype=np.float64)
    disc = dx * dx + dy * dy <= reach * reach
    values = crop.ravel()[disc].astype(np.float64)
    contrast = values.mean() - values if dark else values - values.mean()
    return symmetry_angle_deg(symmetry_moment(dx[disc], dy[disc], symmetry, contrast), symmetry)
