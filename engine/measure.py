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
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

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


def measure_labels(
    labels: npt.NDArray[np.integer], count: int, x_offset: int = 0, y_offset: int = 0
) -> list[Measurement | None]:
    """Measure regions 1 … ``count`` of a label image (a crop at ``x_offset``, ``y_offset``) at once:
    the same figures as :func:`measure_mask` of each region (θ from second moments), None for an absent
    label. For many regions in one image (a crystal's particles) this is one pass instead of one each."""
    rows, cols = np.nonzero(labels)
    k = np.asarray(labels[rows, cols], dtype=np.intp)
    n = count + 1
    area = np.bincount(k, minlength=n).astype(np.float64)
    safe = np.maximum(area, 1.0)
    xc = np.bincount(k, cols, n) / safe
    yc = np.bincount(k, rows, n) / safe
    dx, dy = cols - xc[k], rows - yc[k]
    mu20 = np.bincount(k, dx * dx, n) / safe
    mu02 = np.bincount(k, dy * dy, n) / safe
    mu11 = np.bincount(k, dx * dy, n) / safe
    out: list[Measurement | None] = []
    for i, box in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if box is None:
            out.append(None)
            continue
        bbox = (
            x_offset + box[1].start,
            y_offset + box[0].start,
            x_offset + box[1].stop,
            y_offset + box[0].stop,
        )
        theta = orientation_deg(float(mu20[i]), float(mu02[i]), float(mu11[i]))
        x, y = x_offset + float(xc[i]), y_offset + float(yc[i])
        out.append(Measurement(x=x, y=y, theta_deg=theta, area_px=float(area[i]), bbox=bbox))
    return out


def contrast_orientation(
    image: npt.NDArray[np.generic], m: Measurement, symmetry: int, *, dark: bool
) -> float:
    """θ (degrees, modulo 360°/``symmetry``) of a particle measured at ``m`` from the frame's own pixels.

    A detector's mask is cut from a denoised signal whose blur rounds a cube's corners; the frame keeps
    them. Weights are the particle's contrast (``dark``: darker than its surroundings), lightly smoothed
    (1 px), in a disc of 1.2 x its half-width (from its area), taken about the disc's mean so that the
    background level cancels.
    """
    half = _contrast_half(m)
    r0, c0 = max(0, round(m.y) - half), max(0, round(m.x) - half)
    crop = contrast_smoothing(image[r0 : round(m.y) + half + 1, c0 : round(m.x) + half + 1])
    return contrast_orientations(crop, [m], symmetry, dark=dark, origin=(c0, r0))[0]


def contrast_orientations(
    smoothed: npt.NDArray[np.float32],
    measurements: Sequence[Measurement],
    symmetry: int,
    *,
    dark: bool,
    origin: tuple[int, int] = (0, 0),
) -> list[float]:
    """:func:`contrast_orientation` of many particles in one pass over a frame crop already smoothed by
    :func:`contrast_smoothing`, whose top-left pixel is at ``origin`` (column, row)."""
    if not measurements:
        return []
    half = max(_contrast_half(m) for m in measurements)
    padded = np.pad(smoothed.astype(np.float64), half, constant_values=np.nan)  # outside the crop: none
    x = np.array([m.x for m in measurements]) - origin[0]
    y = np.array([m.y for m in measurements]) - origin[1]
    reach = 1.2 * np.sqrt([m.area_px for m in measurements]) / 2
    step = np.arange(-half, half + 1)
    rows = np.rint(y).astype(np.intp)[:, None, None] + step[None, :, None]  # (particle, row, col)
    cols = np.rint(x).astype(np.intp)[:, None, None] + step[None, None, :]
    inside = (rows >= -half) & (rows < smoothed.shape[0] + half) & (cols >= -half)
    inside &= cols < smoothed.shape[1] + half
    values = padded[
        np.clip(rows + half, 0, padded.shape[0] - 1), np.clip(cols + half, 0, padded.shape[1] - 1)
    ]
    dx, dy = cols - x[:, None, None], rows - y[:, None, None]
    disc = inside & (dx * dx + dy * dy <= reach[:, None, None] ** 2) & np.isfinite(values)
    count = np.maximum(disc.sum(axis=(1, 2)), 1)
    mean = np.where(disc, values, 0.0).sum(axis=(1, 2)) / count
    contrast = np.where(disc, values - mean[:, None, None], 0.0) * (-1.0 if dark else 1.0)
    z = dx + 1j * dy
    terms = z * (dx * dx + dy * dy) if symmetry == 1 else z**symmetry
    moments = (contrast * terms).sum(axis=(1, 2))
    return [symmetry_angle_deg(complex(c), symmetry) for c in moments]


def _contrast_half(m: Measurement) -> int:
    """Half-size of the box that holds :func:`contrast_orientation`'s disc, px."""
    return math.ceil(1.2 * math.sqrt(m.area_px) / 2) + 2


def contrast_smoothing(image: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    """The light (1 px) smoothing :func:`contrast_orientation` weights pixels by."""
    return np.asarray(cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), 1.0), dtype=np.float32)
