"""A movie's particle scale from one frame: the scale-normalised Laplacian of Gaussian (Lindeberg).

For auto-detect with no size given. The frame, particles made positive, is filtered with
``-σ² ∇²G_σ`` at scales σ from 1 px up in steps of 2^(1/4) (to an eighth of the frame's shorter side
in radius); a disc of radius r responds most at σ = r / √2. Each place keeps its largest response over
the scales at which that response stands ``MIN_SNR`` noise s.d. (of that scale, from the median absolute
deviation) above zero, with the scale it came from; the maxima of that map (3 x 3, on a grid
``_GRID`` times coarser than the frame) are the blobs, the strongest of them (at least ``STRONG`` of the
largest) the particles, and the radius is √2 times their median scale. Scales above 4 px are filtered on
a binned copy of the frame (a pyramid: the same normalised response at a fraction of the cost); one
1024² frame takes about 0.1 s on one core.

Measured on the simulator (``benchmarks/accuracy.py --scene sizes``): spheres of radius 10, 20 and 40 px
are estimated at 0.8 to 0.95 of their radius (a sphere's projected thickness peaks at its centre, so
its blob is smaller than its outline). Particles packed in a crystal with gaps narrower than the blobs'
scale read as blobs larger than one particle (the 7 x 7 crystal of 22 px cubes with 2 px gaps reads as
radius 23 to 32 px, the crystal's texture). So the surroundings of the strong blobs' median position
are searched for a lattice (lptem.engine.lattice): where one is found with a pitch below the blobs'
diameter, the particles cannot be larger than half of it, and the radius is half the pitch (touching
spheres: exactly their radius; the cubes: 12 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from lptem.engine.api import Frame
from lptem.engine.lattice import Lattice, find_lattice
from lptem.engine.noise import MAD_TO_SIGMA

MIN_SNR = 6.0
"""A blob's response must reach this many noise s.d. of its scale."""
STRONG = 0.5
"""Blobs whose response is at least this share of the strongest one are the particles."""
_STEPS_PER_OCTAVE = 4
_MIN_SIGMA_PX = 1.0
_LEVEL_SIGMA_PX = 2.0
"""Each scale is filtered on the pyramid level where it is between 2 and 4 level px."""
_GRID = 2
"""The responses are compared on a grid this much coarser than the frame."""


LATTICE_WINDOW = 3.0
"""The strong blobs' surroundings searched for a crystal's lattice, in their radii to each side."""
LATTICE_BANDS = (1.0, 0.5, 0.25)
"""The wide ends of the bands a lattice is looked for in, in blob radii."""
ESTIMATE_FRAMES = 5
"""Frames an estimate is tried on before the default radius is kept (an empty field costs no more)."""


@dataclass(frozen=True, slots=True)
class ScaleEstimate:
    radius_px: float
    """Particle radius, px (√2 x the median scale of the strongest blobs)."""
    blobs: int
    """Strong blobs it rests on."""
    sigma_px: float
    """Their median LoG scale, px."""
    pitch_px: float | None = None
    """The lattice pitch of a crystal the blobs turned out to be, px: then the radius is half of it."""


def estimate_radius(frame: Frame, *, dark: bool, max_radius_px: float | None = None) -> ScaleEstimate | None:
    """The particle radius in ``frame`` (module docstring), or None when no blob stands out.

    ``max_radius_px`` caps the search (default an eighth of the frame's shorter side).
    """
    image = np.asarray(frame, dtype=np.float32)
    if dark:
        image = -image
    cap = max_radius_px if max_radius_px is not None else min(image.shape[:2]) / 8
    grid = (max(1, image.shape[1] // _GRID), max(1, image.shape[0] // _GRID))
    best = np.full(grid[::-1], -np.inf, dtype=np.float32)  # largest significant response over scales
    best_sigma = np.zeros(grid[::-1], dtype=np.float32)
    for sigma in _scales(cap / math.sqrt(2)):
        response, noise = _normalised_log(image, sigma)
        response = np.asarray(cv2.resize(response, grid, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        if noise <= 0:  # a flat frame (or one without noise): nothing stands out at this scale
            continue
        significant = response >= MIN_SNR * noise
        better = significant & (response > best)
        best[better] = response[better]
        best_sigma[better] = sigma
    peaks = np.isfinite(best) & (best >= cv2.dilate(best, np.ones((3, 3), np.uint8)))
    values = best[peaks]
    if values.size == 0:
        return None
    strong_at = peaks & (best >= STRONG * values.max())
    strong = best_sigma[strong_at]
    sigma = float(np.median(strong))
    radius = math.sqrt(2) * sigma
    rows, cols = np.nonzero(strong_at)
    centre = (int(np.median(rows)) * _GRID, int(np.median(cols)) * _GRID)  # amid the strong blobs
    lattice = _lattice_at(image, centre, radius)
    if lattice is not None and lattice.pitch_px < 2 * radius:  # the blobs span several particles
        return ScaleEstimate(lattice.pitch_px / 2, int(strong.size), sigma, lattice.pitch_px)
    return ScaleEstimate(radius, int(strong.size), sigma)


def _lattice_at(image: npt.NDArray[np.float32], centre: tuple[int, int], radius: float) -> Lattice | None:
    """The lattice of a crystal around ``centre`` (row, col) px whose blobs have ``radius`` px, with a
    pitch from a quarter of the radius to three times it (lptem.engine.lattice), or None. The window reaches
    ``LATTICE_WINDOW`` radii to each side; it is band-passed from an eighth of the radius to each of
    ``LATTICE_BANDS`` (a wide band keeps a coarse lattice, a narrow one a fine lattice on a crystal whose
    outline would dominate the wide one), and the first band that shows a lattice gives it."""
    reach = math.ceil(LATTICE_WINDOW * radius)
    rows = slice(max(0, centre[0] - reach), min(image.shape[0], centre[0] + reach + 1))
    cols = slice(max(0, centre[1] - reach), min(image.shape[1], centre[1] + reach + 1))
    window = image[rows, cols]
    everywhere = np.ones(window.shape, dtype=bool)
    fine = _blurred(window, max(0.7, radius / 8))
    for share in LATTICE_BANDS:
        band = np.asarray(fine - _blurred(window, share * radius), dtype=np.float32)
        lattice = find_lattice(band, everywhere, min_px=max(2.0, radius / 4), max_px=3 * radius)
        if lattice is not None:
            return lattice
    return None


def _blurred(image: npt.NDArray[np.float32], sigma: float) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE), np.float32)


def _scales(max_sigma: float) -> list[float]:
    count = max(
        1, math.floor(_STEPS_PER_OCTAVE * math.log2(max(max_sigma, _MIN_SIGMA_PX) / _MIN_SIGMA_PX)) + 1
    )
    return [_MIN_SIGMA_PX * 2 ** (k / _STEPS_PER_OCTAVE) for k in range(count)]


def _normalised_log(image: npt.NDArray[np.float32], sigma: float) -> tuple[npt.NDArray[np.float32], float]:
    """``-σ²∇²G_σ`` of ``image`` (on its pyramid level, full size) and its noise s.d."""
    level = max(0, math.floor(math.log2(sigma / _LEVEL_SIGMA_PX))) if sigma > _LEVEL_SIGMA_PX else 0
    binned = image
    for _ in range(level):
        rows, cols = binned.shape[0] // 2, binned.shape[1] // 2
        binned = np.asarray(
            cv2.resize(binned[: 2 * rows, : 2 * cols], (cols, rows), interpolation=cv2.INTER_AREA),
            dtype=np.float32,
        )
    s = sigma / 2**level
    smooth = cv2.GaussianBlur(binned, (0, 0), s)
    values = np.asarray(-(s * s) * cv2.Laplacian(smooth, cv2.CV_32F), dtype=np.float32)
    sample = values[::4, ::4].ravel()
    noise = MAD_TO_SIGMA * float(np.median(np.abs(sample - np.median(sample))))
    if level:
        values = np.asarray(
            cv2.resize(values, image.shape[1::-1], interpolation=cv2.INTER_LINEAR), np.float32
        )
    return values, noise


@dataclass(slots=True)
class ParticleScale:
    """The particle radius a tracker works at and where it came from: given (by the user), estimated (from
    the first frames with auto-detect) or default (neither; packed particles are then not split)."""

    radius_px: float
    source: Literal["given", "estimated", "default"]
    estimate: ScaleEstimate | None = None
    attempts: int = 0
    """Frames an estimate was tried on."""

    @classmethod
    def from_given(cls, given_px: float | None, default_px: float) -> ParticleScale:
        return cls(given_px, "given") if given_px is not None else cls(default_px, "default")

    @property
    def known(self) -> bool:
        return self.source != "default"

    @property
    def open(self) -> bool:
        """Whether an estimate is still to be tried."""
        return self.source == "default" and self.attempts < ESTIMATE_FRAMES

    def estimate_from(self, frame: Frame, *, dark: bool) -> bool:
        """Try an estimate on ``frame``; True when it set the radius (to the nearest 0.5 px)."""
        self.attempts += 1
        found = estimate_radius(frame, dark=dark)
        if found is None:
            return False
        self.radius_px, self.source, self.estimate = round(2 * found.radius_px) / 2, "estimated", found
        return True

    def describe(self) -> dict[str, Any]:
        """For status: the radius (px), its source and, when estimated, what the estimate rests on."""
        out: dict[str, Any] = {"particle_radius_px": self.radius_px, "particle_radius_source": self.source}
        if self.estimate is not None:
            out["scale_blobs"] = self.estimate.blobs
            out["scale_sigma_px"] = round(self.estimate.sigma_px, 2)
            if self.estimate.pitch_px is not None:
                out["scale_lattice_pitch_px"] = round(self.estimate.pitch_px, 2)
        elif self.source == "default":
            out["scale_attempts"] = self.attempts
        return out
