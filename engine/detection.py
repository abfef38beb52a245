"""What a detector is set up with and what it finds: :class:`DetectorConfig`, :class:`Detection`,
:class:`DetectionSet` (the detector itself is lptem.engine.detect)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lptem.engine.api import Frame, Measurement
from lptem.engine.measure import check_symmetry

DEFAULT_RADIUS_PX = 8.0
"""Particle radius when none is given or estimated, px."""


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Detector parameters. Lengths in px."""

    particle_radius_px: float | None = None
    """Expected particle radius; sets the default denoising scale and area limits. Unset: not known
    (``DEFAULT_RADIUS_PX`` is used, and packed particles are not split; the classical tracker estimates it
    with auto-detect)."""
    smoothing_px: float | None = None
    """S.d. of the denoising Gaussian; default half the particle radius. Less smoothing keeps edges
    (better localisation) when the SNR allows it; more detects fainter particles."""
    polarity: Literal["dark", "bright"] = "dark"
    """Bright-field TEM shows particles darker than the liquid."""
    background_scale_px: float | None = None
    """Intensity variations broader than this are treated as background and removed; default
    max(64, 8 x particle radius)."""
    threshold_sigma: float = 4.0
    """Mask threshold in units of the denoised image's noise s.d. (sets the candidate regions)."""
    min_peak_sigma: float = 5.0
    """A candidate is a detection when its peak reaches this many noise s.d. (border-corrected)."""
    min_area_px: float | None = None
    """Smallest accepted component; default a disc of a third of the particle radius."""
    max_area_px: float | None = None
    """Largest accepted component; default 50 particle areas (aggregates)."""
    segment_fraction: float = 0.5
    """Each particle's mask is where the denoised signal exceeds this fraction of the particle's peak."""
    bin_factor: int | None = None
    """Filter, threshold and label at 1/bin_factor resolution (masks are still built at full resolution).
    Default: 2 for particles of radius >= 4 px (about 3x faster at 1024^2), else 1."""
    split: bool | None = None
    """Split a component holding several particles (packed, touching) at the dips between them
    (lptem.engine.split). Unset: when ``particle_radius_px`` is given (a particle much larger than the
    radius would be cut up); False keeps every connected component one particle (e.g. rods longer than
    the particle scale, whose ends would look like two)."""
    symmetry: int = 2
    """Rotational symmetry of the particles: 2 (rods, ellipses: second moments), 4 (cubes), 6 (hexagonal
    plates) or 1 (a head-tail direction); θ is reported modulo 360°/symmetry (lptem.engine.measure)."""

    def __post_init__(self) -> None:
        if not 0 < self.radius_px < self.background_scale:
            raise ValueError("need 0 < particle_radius_px < background_scale_px")
        if self.smoothing_px is not None and self.smoothing_px <= 0:
            raise ValueError("smoothing_px must be positive")
        if self.polarity not in ("dark", "bright"):
            raise ValueError(f"polarity must be 'dark' or 'bright', got {self.polarity!r}")
        if not 0 < self.threshold_sigma <= self.min_peak_sigma:
            raise ValueError("need 0 < threshold_sigma <= min_peak_sigma")
        if not 0 <= self.segment_fraction < 1:
            raise ValueError("segment_fraction must be in [0, 1)")
        if self.bin_factor is not None and self.bin_factor < 1:
            raise ValueError("bin_factor must be at least 1")
        check_symmetry(self.symmetry)

    @property
    def radius_px(self) -> float:
        """The particle radius in use, px."""
        return self.particle_radius_px if self.particle_radius_px is not None else DEFAULT_RADIUS_PX

    @property
    def splits(self) -> bool:
        """Whether packed particles are split (``split``, or by default when the radius is known)."""
        return self.split if self.split is not None else self.particle_radius_px is not None

    @property
    def background_scale(self) -> float:
        if self.background_scale_px is not None:
            return self.background_scale_px
        return max(64.0, 8 * self.radius_px)

    @property
    def binning(self) -> int:
        if self.bin_factor is not None:
            return self.bin_factor
        return 2 if self.radius_px >= 4 else 1

    @property
    def area_limits(self) -> tuple[float, float]:
        disc = math.pi * self.radius_px**2
        lo = self.min_area_px if self.min_area_px is not None else max(4.0, disc / 9)
        hi = self.max_area_px if self.max_area_px is not None else 50 * disc
        return lo, hi


@dataclass(frozen=True, slots=True)
class Detection:
    """One particle candidate: its mask (a crop of the frame), measurements and strength."""

    measurement: Measurement
    peak_snr: float
    """Largest denoised signal on the mask divided by the noise s.d."""
    mask: npt.NDArray[np.bool_]
    """Mask crop; its top-left pixel is at column ``offset[0]``, row ``offset[1]``."""
    offset: tuple[int, int]

    def contains(self, x: float, y: float) -> bool:
        """Whether the pixel nearest to (x, y) px belongs to the mask."""
        c, r = round(x) - self.offset[0], round(y) - self.offset[1]
        rows, cols = self.mask.shape
        return 0 <= r < rows and 0 <= c < cols and bool(self.mask[r, c])

    def paint(self, labels: npt.NDArray[np.uint16], value: int) -> None:
        """Write ``value`` into ``labels`` (frame-sized) wherever the mask is set."""
        x0, y0 = self.offset
        rows, cols = self.mask.shape
        labels[y0 : y0 + rows, x0 : x0 + cols][self.mask] = value


@dataclass(frozen=True, slots=True)
class DetectionSet:
    detections: tuple[Detection, ...]
    noise_sigma: float
    """Noise s.d. of the denoised image, counts."""
    signal: npt.NDArray[np.float32]
    """The denoised, binned image the detections came from (for searches near known objects)."""
    image: Frame
    """The frame itself (not a copy): n-fold orientations are measured on its pixels."""
