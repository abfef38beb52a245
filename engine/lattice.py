"""Particles packed on a lattice (a 2-D crystal): its vectors from the autocorrelation, its sites.

Where the gaps between packed particles are narrower than the noise lets one see them one by one (cubes
2 px apart), the crystal still shows its period: the autocorrelation of a band-passed image over the
whole crystal peaks at every lattice vector, each peak the sum over all its particles. ``find_lattice``
reads the two shortest non-collinear vectors from those peaks (an oblique, square or hexagonal
lattice); it accepts a lattice only where the correlation at both vectors reaches ``MIN_CORRELATION`` of
its zero-lag value and at their sum and difference half that (three particles in a corner, a row of
them, or particles at random do not repeat at both diagonals), and where the strongest peak up to
``SHELLS`` times the shorter vector lies on the lattice (a band much narrower than the particles
correlates their edges at lags between the lattice's own peaks). The peaks are broad and lean outwards:
the vectors can be several per cent long.

``lattice_sites`` folds the image onto one lattice cell to find where the particles sit in it (the
phase), fits the lattice to the particles' centroids, and returns the sites that fall on the crystal.
A site is where a particle's centre lies on average; a particle jiggling about it or a crystal slightly
bent is followed by the split's centroid step (lptem.engine.split). A crystal with grains of different
orientation reads as the strongest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

MIN_CORRELATION = 0.25
"""Share of the zero-lag autocorrelation each lattice vector must reach (their sum and difference: half)."""
SHELLS = 2.5
"""The peaks up to this many times the shorter vector must be strongest on the lattice."""
MIN_OVERLAP = 0.25
"""Lags at which the crystal overlaps its shifted self over less than this share of its area are not
read (too few pairs of pixels)."""
MAX_COSINE = 0.87
"""The second vector makes at least 30° with the first."""
FIT_ROUNDS = 2
"""Least-squares fits of the lattice to its particles' centres (a mean shift from each site)."""
MIN_FIT_SITES = 6
"""Sites needed on the crystal for a fit."""
MAX_CHANGE = 0.2
"""A fit may change each vector by at most this share of the pitch."""
SHIFTS = 3
"""Mean-shift steps from a site to its particle's centre."""
_PHASE_BINS = 16
"""The lattice cell is folded onto this many bins per axis."""

Points = npt.NDArray[np.intp]
"""(k, 2) array of (row, col) positions."""


@dataclass(frozen=True, slots=True)
class Lattice:
    vectors: npt.NDArray[np.float64]
    """(2, 2): the two shortest non-collinear lattice vectors as rows of (row, col), px."""

    @property
    def pitch_px(self) -> float:
        """The shortest distance between neighbouring sites, px."""
        return float(np.hypot(*self.vectors.T).min())


def find_lattice(
    values: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], *, min_px: float, max_px: float
) -> Lattice | None:
    """The lattice of the pattern in ``values`` over ``mask`` with vectors between ``min_px`` and
    ``max_px`` long, or None where there is none (module docstring). ``values`` should be band-passed
    (zero mean over the crystal): a slope would correlate at every lag."""
    corr = _autocorrelation(values, mask)
    centre = np.array(corr.shape) // 2
    r = max(1, round(min_px / 2))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    rows, cols = np.nonzero((corr >= cv2.dilate(corr, disc)) & (corr >= MIN_CORRELATION))
    lags = np.column_stack([rows, cols]) - centre
    length = np.hypot(*lags.T)
    keep = (length > min_px) & (length < max_px)
    lags, length = lags[keep], length[keep]
    first, second = _two_shortest(lags[np.argsort(length, kind="stable")])
    if first is None or second is None:
        return None
    vectors = np.array([_refined(corr, centre, first), _refined(corr, centre, second)])
    near = length <= SHELLS * math.hypot(*first)
    strongest = lags[near][int(np.argmax(corr[rows[keep][near], cols[keep][near]]))]
    if _off_lattice(strongest, vectors) > r:  # a weaker pattern between the lattice's peaks
        return None
    sides = min(_peak_near(corr, centre, lag, r) for lag in (first, second))
    diagonals = min(_peak_near(corr, centre, lag, r) for lag in (first + second, first - second))
    if sides < MIN_CORRELATION or diagonals < MIN_CORRELATION / 2:
        return None
    return Lattice(vectors)


def lattice_sites(values: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], lattice: Lattice) -> Points:
    """The sites of ``lattice`` on ``mask``, (row, col) rounded: the cell position where ``values``
    (larger on the particles) folded over the crystal is largest, repeated over the lattice; then
    ``FIT_ROUNDS`` times, the lattice (origin and vectors) fitted by least squares to the particles
    found near its sites (the autocorrelation's vectors can be several per cent long, which adds up over
    a crystal's width)."""
    rows, cols = np.nonzero(mask)
    pixels = np.column_stack([rows, cols]).astype(np.float64)
    basis = lattice.vectors  # rows: the two vectors
    middle = pixels.mean(axis=0)  # phase read from the middle out: an error in the vectors adds up less
    origin = middle + _phase(_cell_coordinates(pixels, middle, basis), values[rows, cols]) @ basis
    cells = _cell_coordinates(pixels, origin, basis)
    low, high = np.floor(cells.min(axis=0)) - 1, np.ceil(cells.max(axis=0)) + 1
    i, j = np.meshgrid(np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1), indexing="ij")
    indices = np.column_stack([i.ravel(), j.ravel()])
    for _ in range(FIT_ROUNDS):
        fit = _fitted(values, mask, indices, origin, basis)
        if fit is None:
            break
        origin, basis = fit
    sites = np.rint(origin + indices @ basis).astype(np.intp)
    found: Points = sites[_on_mask(sites, mask)]
    return found


def _centres(
    values: npt.NDArray[np.float32], sites: npt.NDArray[np.float64], pitch_px: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each particle's centre near ``sites`` (k, 2): ``SHIFTS`` times, the centroid of the positive
    ``values`` within a third of the pitch of where it stands (a mean shift, so the window ends up
    around the particle rather than the site); and which ones found any positive value."""
    reach = max(1.0, pitch_px / 3)
    r = math.ceil(reach)
    dr, dc = np.mgrid[-r : r + 1, -r : r + 1]
    inside = np.hypot(dr, dc) <= reach
    offsets = np.column_stack([dr[inside], dc[inside]])
    positive = np.maximum(values, 0.0)
    at = sites.copy()
    found = np.zeros(len(sites), dtype=bool)
    for _ in range(SHIFTS):
        pixels = np.rint(at)[:, None, :].astype(np.intp) + offsets[None, :, :]
        rows = np.clip(pixels[..., 0], 0, values.shape[0] - 1)
        cols = np.clip(pixels[..., 1], 0, values.shape[1] - 1)
        weights = positive[rows, cols].astype(np.float64)
        mass = weights.sum(axis=1)
        found = mass > 0
        centroid = (weights[..., None] * pixels).sum(axis=1) / np.maximum(mass, 1e-12)[:, None]
        at = np.where(found[:, None], centroid, at)
    return at, found


def _cell_coordinates(
    pixels: npt.NDArray[np.float64], origin: npt.NDArray[np.float64], basis: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The ``pixels`` (n, 2) in lattice coordinates: (n, 2) multiples of the two vectors (rows of
    ``basis``) from ``origin``; a pixel's site is the nearest whole pair."""
    return np.asarray((pixels - origin) @ np.linalg.inv(basis), dtype=np.float64)


def _phase(cell: npt.NDArray[np.float64], values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Where in the lattice cell (fractions of the two vectors) ``values`` at the pixels of lattice
    coordinates ``cell`` (n, 2), folded onto one cell and smoothed, are largest."""
    bins = np.minimum((np.mod(cell, 1.0) * _PHASE_BINS).astype(np.intp), _PHASE_BINS - 1)
    folded = np.zeros((_PHASE_BINS, _PHASE_BINS))
    np.add.at(folded, (bins[:, 0], bins[:, 1]), values.astype(np.float64))
    wrapped = np.pad(folded, 1, mode="wrap")  # the cell is periodic: smooth it 3 x 3 across its edges
    folded = np.asarray(cv2.blur(wrapped, (3, 3))[1:-1, 1:-1], dtype=np.float64)
    return (np.array(np.unravel_index(int(np.argmax(folded)), folded.shape)) + 0.5) / _PHASE_BINS


def _on_mask(points: npt.NDArray[np.floating] | Points, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which ``points`` (row, col) round to a pixel of ``mask``."""
    at = np.rint(points).astype(np.intp)
    inside = (at >= 0).all(axis=1) & (at[:, 0] < mask.shape[0]) & (at[:, 1] < mask.shape[1])
    on = np.zeros(len(at), dtype=bool)
    on[inside] = mask[at[inside, 0], at[inside, 1]]
    return on


def _fitted(
    values: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    indices: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    basis: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """The origin and vectors (rows) of the lattice through the centres of the particles at its sites
    (lattice ``indices``) on ``mask``, by least squares: of those only the inner ones (all four
    neighbours on the mask; an edge particle's response leans outwards) where there are
    ``MIN_FIT_SITES``; only the origin where the sites lie in one row; None with fewer sites than that or
    vectors that would change by more than ``MAX_CHANGE`` of the pitch."""
    sites = origin + indices @ basis
    on = _on_mask(sites, mask)
    if on.sum() < MIN_FIT_SITES:
        return None
    centres, found = _centres(values, sites[on], float(np.hypot(*basis.T).min()))
    use = _interior(indices, on)[on] & found
    if use.sum() < MIN_FIT_SITES:
        use = found
    if use.sum() < MIN_FIT_SITES:
        return None
    design = np.column_stack([np.ones(int(use.sum())), indices[on][use]])
    if np.linalg.matrix_rank(design) < 3:  # sites in one row fix only one vector: move the origin
        return origin + (centres[use] - sites[on][use]).mean(axis=0), basis
    solution, *_ = np.linalg.lstsq(design, centres[use], rcond=None)
    fit = np.asarray(solution, dtype=np.float64)
    if np.abs(fit[1:] - basis).max() > MAX_CHANGE * float(np.hypot(*basis.T).min()):
        return None  # centres that do not follow the lattice: keep it as it was
    return fit[0], fit[1:]


def _interior(indices: npt.NDArray[np.float64], on: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which sites (lattice ``indices``, a full rectangle of them in row-major order) have all four
    neighbours along the two vectors ``on`` the crystal."""
    rows = len(np.unique(indices[:, 0]))
    grid = on.reshape(rows, -1)
    padded = np.pad(grid, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return np.asarray(inner.ravel(), dtype=bool)


def _autocorrelation(values: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """The autocorrelation of ``values`` over ``mask`` per overlapping pixel, as a share of its zero-lag
    value, lag (0, 0) at the centre; 0 where the overlap is small (``MIN_OVERLAP``)."""
    shape = (cv2.getOptimalDFTSize(2 * values.shape[0]), cv2.getOptimalDFTSize(2 * values.shape[1]))
    centred = values - float(values[mask].mean()) if mask.any() else values
    sums = _circular_autocorrelation(np.where(mask, centred, 0).astype(np.float64), shape)
    pairs = _circular_autocorrelation(mask.astype(np.float64), shape)
    centre = (shape[0] // 2, shape[1] // 2)
    if pairs[centre] <= 0 or sums[centre] <= 0:
        return np.zeros(shape)
    corr = sums / np.maximum(pairs, 1.0)
    corr /= corr[centre]
    corr[pairs < MIN_OVERLAP * pairs[centre]] = 0.0
    return np.asarray(corr, dtype=np.float64)


def _circular_autocorrelation(
    image: npt.NDArray[np.float64], shape: tuple[int, int]
) -> npt.NDArray[np.float64]:
    spectrum = np.fft.rfft2(image, s=shape)
    return np.asarray(np.fft.fftshift(np.fft.irfft2(spectrum * np.conj(spectrum), s=shape)), np.float64)


def _two_shortest(
    lags: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.intp] | None, npt.NDArray[np.intp] | None]:
    """The first of ``lags`` (sorted by length) and the first after it at least 30° off its line."""
    if len(lags) == 0:
        return None, None
    first = lags[0]
    for lag in lags[1:]:
        cosine = abs(float(np.dot(lag, first))) / (math.hypot(*lag) * math.hypot(*first))
        if cosine < MAX_COSINE:
            return first, lag
    return first, None


def _refined(
    corr: npt.NDArray[np.float64], centre: npt.NDArray[np.intp], lag: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """``lag`` to sub-pixel: a parabola through the peak and its neighbours along each axis."""
    at = centre + lag
    out = lag.astype(np.float64)
    for axis in (0, 1):
        step = np.eye(2, dtype=np.intp)[axis]
        before, after = at - step, at + step
        if min(before) < 0 or after[0] >= corr.shape[0] or after[1] >= corr.shape[1]:
            continue
        a, b, c = corr[tuple(before)], corr[tuple(at)], corr[tuple(after)]
        curvature = a - 2 * b + c
        if curvature < 0:
            out[axis] += 0.5 * (a - c) / curvature
    return out


def _off_lattice(lag: npt.NDArray[np.intp], vectors: npt.NDArray[np.float64]) -> float:
    """How far ``lag`` (row, col) px is from the nearest point of the lattice of ``vectors`` (rows), px."""
    whole = np.rint(lag @ np.linalg.inv(vectors))
    return float(np.hypot(*(lag - whole @ vectors)))


def _peak_near(
    corr: npt.NDArray[np.float64], centre: npt.NDArray[np.intp], lag: npt.NDArray[np.intp], reach: int
) -> float:
    """The largest correlation within ``reach`` px of ``lag`` (0 outside the map)."""
    r, c = centre + lag
    r0, r1 = max(0, r - reach), min(corr.shape[0], r + reach + 1)
    c0, c1 = max(0, c - reach), min(corr.shape[1], c + reach + 1)
    return float(corr[r0:r1, c0:c1].max()) if r0 < r1 and c0 < c1 else 0.0
