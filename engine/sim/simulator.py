"""The LPTEM movie simulator: particles moving in a liquid cell, imaged frame by frame, with ground truth.

Particles live in a periodic *world* that extends the field of view by ``margin_px`` on every side, so
they leave and re-enter the field. The field of view can be moved (a stage move) and the dose changed
while the simulation runs. Everything random comes from one seeded generator: the same configuration
and seed give the same frames and truth.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from lptem.engine.sim.geometry import clip, coverage_inside, expanded, intersection, merge, overlap, separate
from lptem.engine.sim.motion import Displacements, Motion
from lptem.engine.sim.optics import F32, NoiseBank, Stack, apply_mtf, mtf_grid, noise_std_factor, psf_kernel
from lptem.engine.sim.shapes import Footprint, Shape, ShapeKind, footprint_area_px, render

OutputDtype = Literal["uint8", "uint16", "float32"]
SHAPE_KINDS: tuple[ShapeKind, ...] = ("sphere", "rod", "cube")


@dataclass(frozen=True, slots=True)
class Particles:
    count: int = 4
    shape: ShapeKind | Literal["mixed"] = "sphere"
    width_nm: float = 9.3
    """Sphere diameter, rod diameter, cube edge. The default gold sphere (37 px, mean projected
    thickness 6.2 nm) is calibrated to SAM-EM's example clip: CNR 0.98 at 5 nm of liquid, 0.53 at
    160 nm (tests/engine/sim/test_simulator.py, docs/simulator.md)."""
    rod_aspect: float = 2.5
    """Rod length / diameter (100 x 40 px rods have 2.5)."""
    dispersity: float = 0.1
    """Relative s.d. of the size."""
    mfp_nm: float = 70.0
    """Electron mean free path in the particle (gold: about 70 nm)."""
    mfp_range_nm: tuple[float, float] | None = None
    """Draw each particle's mean free path uniformly from this range instead (e.g. (20, 85))."""
    start_in_view: bool = True
    """Place all particles inside the field of view at the start (else anywhere in the world)."""
    start_px: tuple[tuple[float, float], ...] | None = None
    """Starting centres (x, y) in frame px, one per particle, instead of random places."""
    start_angle_deg: float | None = None
    """Every particle starts at this angle (a crystal's common orientation) instead of a random one."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    shape: tuple[int, int] = (1024, 1024)
    """Frame (rows, cols), px."""
    pixel_size_nm: float = 0.25
    """With the default dose rate and frame rate: N0 = 22.5 e-/px; a 10 nm particle is 40 px wide."""
    fps: float = 50.0
    dtype: OutputDtype = "uint8"
    stack: Stack = field(default_factory=Stack)
    particles: Particles = field(default_factory=Particles)
    motion: Motion = field(default_factory=Motion)
    margin_px: int = 64
    """Hidden border of the world around the field of view (widened to fit the largest particle)."""
    collisions: bool = True
    """Particles push each other apart (as discs of their bounding radius) instead of overlapping."""
    noise: Literal["fast", "exact"] = "fast"
    psf_radius_px: int = 32
    """Fast renderer: support of the PSF core applied around particles (see optics.psf_kernel)."""
    uint16_gain: float = 100.0
    """uint16 output: DN per electron."""
    uint16_offset: float = 100.0
    uint8_sigma_dn: float = 32.0
    """uint8 output: the background is mapped to 128 DN with this noise s.d. (like a normalised JPEG)."""

    @property
    def frame_time_s(self) -> float:
        return 1.0 / self.fps


@dataclass(frozen=True, slots=True)
class FrameTruth:
    """Ground truth for one frame. Arrays are per particle (index k has label k + 1)."""

    x: npt.NDArray[np.float64]
    """Centre, px, frame coordinates (x = column, y = row); may lie outside the frame."""
    y: npt.NDArray[np.float64]
    theta_deg: npt.NDArray[np.float64]
    """Long-axis angle in (-90, 90], from +x towards +y (lptem.engine.measure's convention)."""
    area_px: npt.NDArray[np.float64]
    """Footprint area inside the frame, px^2 (before occlusion by other particles)."""
    visible: npt.NDArray[np.bool_]
    """The centre lies inside the frame."""
    inside_fraction: npt.NDArray[np.float64]
    """Share of the footprint inside the frame (1: wholly in view)."""
    unwrapped: npt.NDArray[np.float64]
    """(n, 2) world positions without periodic wrapping, px: for MSD ground truth."""
    labels: npt.NDArray[np.uint16] | None = None
    """Instance label map (particle k -> k + 1; the particle nearer the detector wins overlaps)."""


@dataclass(frozen=True, slots=True)
class SimFrame:
    index: int
    t_s: float
    image: npt.NDArray[Any]
    truth: FrameTruth


class Simulator:
    def __init__(self, config: SimConfig | None = None, seed: int = 0) -> None:
        self.config = config or SimConfig()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        c = self.config
        self.stack = c.stack
        self.shapes, self.mfp_nm, self.depth_nm = self._draw_particles()
        biggest = max((s.bounding_radius_px for s in self.shapes), default=0.0)
        self.margin = max(c.margin_px, math.ceil(biggest) + 2)  # a particle must fit in the hidden border
        rows, cols = c.shape
        self.world = (rows + 2 * self.margin, cols + 2 * self.margin)
        self.fov_origin = np.array([float(self.margin), float(self.margin)])  # (x, y) in the world
        start = c.particles.start_angle_deg
        n = len(self.shapes)
        self.angles = self.rng.uniform(-90.0, 90.0, n) if start is None else np.full(n, float(start))
        self.unwrapped = self._place_particles()
        self.sites = self.unwrapped.copy()
        """Starting positions (world px): the centres of the traps when the motion has one."""
        self.site_angles = self.angles.copy()
        self.steps = Displacements(c.motion, len(self.shapes), self.rng)
        self.index = 0
        self.beam_blanked = False
        self._psf = psf_kernel(c.psf_radius_px)
        self._noise = NoiseBank(c.shape, self.rng) if c.noise == "fast" else None
        pad = 2 * c.psf_radius_px
        self._mtf = mtf_grid((c.shape[0] + 2 * pad, c.shape[1] + 2 * pad)) if c.noise == "exact" else None

    # ------------------------------------------------------------------ setup
    def _draw_particles(self) -> tuple[list[Shape], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        p, c = self.config.particles, self.config
        n = p.count
        kinds = self.rng.choice(SHAPE_KINDS, n) if p.shape == "mixed" else np.full(n, p.shape)
        widths = p.width_nm * np.clip(1 + p.dispersity * self.rng.standard_normal(n), 0.3, None)
        shapes = [
            Shape(str(k), w / c.pixel_size_nm, w * (p.rod_aspect if k == "rod" else 1.0) / c.pixel_size_nm)  # type: ignore[arg-type]
            for k, w in zip(kinds, widths, strict=True)
        ]
        lo, hi = p.mfp_range_nm or (p.mfp_nm, p.mfp_nm)
        mfp = self.rng.uniform(lo, hi, n)
        depth = self.rng.uniform(0.0, c.stack.liquid_thickness_nm, n)
        return shapes, mfp, depth

    def _place_particles(self) -> npt.NDArray[np.float64]:
        """Random positions, far enough apart not to touch (rejection sampling), or the given ones."""
        c = self.config
        if c.particles.start_px is not None:
            return self._given_positions(c.particles.start_px)
        rows, cols = c.shape
        radii = np.array([s.bounding_radius_px for s in self.shapes])
        if not len(radii):
            return np.zeros((0, 2))
        if c.particles.start_in_view:
            lo = self.fov_origin + radii.max()
            hi = self.fov_origin + np.array([cols, rows]) - radii.max()
        else:
            lo, hi = np.zeros(2), np.array([self.world[1], self.world[0]], dtype=float)
        placed: list[npt.NDArray[np.float64]] = []
        for k in range(len(self.shapes)):
            for _ in range(10000):
                p = self.rng.uniform(lo, hi)
                if all(np.hypot(*(p - q)) > 1.2 * (radii[k] + radii[j]) for j, q in enumerate(placed)):
                    placed.append(p)
                    break
            else:
                raise ValueError(f"cannot place {len(self.shapes)} particles without contact in this frame")
        return np.array(placed).reshape(-1, 2)

    def _given_positions(self, start_px: tuple[tuple[float, float], ...]) -> npt.NDArray[np.float64]:
        """World positions of starting centres given in frame px."""
        given = np.array(start_px, dtype=np.float64).reshape(-1, 2)
        if len(given) != len(self.shapes):
            raise ValueError(f"start_px has {len(given)} positions for {len(self.shapes)} particles")
        world: npt.NDArray[np.float64] = given + self.fov_origin
        return world

    # ------------------------------------------------------------------ control (a stage and a beam)
    def move_stage(self, dx_px: float, dy_px: float) -> None:
        """Shift the field of view by (dx, dy) px: particles appear to move by (-dx, -dy)."""
        self.fov_origin += (dx_px, dy_px)

    def set_dose_rate(self, dose_rate: float) -> None:
        """Change the beam's dose rate (e-/Å^2/s) from the next frame on."""
        self.stack = dataclasses.replace(self.stack, dose_rate=dose_rate)

    def blank_beam(self, blanked: bool) -> None:
        """Blank the beam (no electrons reach the camera: frames hold read noise only) or unblank it,
        from the next frame on. The particles keep moving."""
        self.beam_blanked = blanked

    # ------------------------------------------------------------------ frames
    def next(self, *, want_labels: bool = False) -> SimFrame:
        """Advance one frame (the first call returns the initial state) and image it."""
        if self.index > 0:
            self._move()
        xy = self._frame_positions()
        footprints = [render(s, x, y, a) for s, (x, y), a in zip(self.shapes, xy, self.angles, strict=True)]
        image = self._image(footprints)
        truth = self._truth(xy, footprints, want_labels)
        frame = SimFrame(self.index, self.index * self.config.frame_time_s, image, truth)
        self.index += 1
        return frame

    def _move(self) -> None:
        steps, turns = self.steps.next()
        m = self.config.motion
        self.unwrapped = self.unwrapped + steps - m.trap_relaxation * (self.unwrapped - self.sites)
        self.angles = self.angles + turns - m.rocking_relaxation * (self.angles - self.site_angles)
        if self.config.collisions and len(self.shapes) > 1:
            radii = np.array([s.bounding_radius_px for s in self.shapes])
            self.unwrapped = separate(self.unwrapped, radii, np.array([self.world[1], self.world[0]], float))

    def _frame_positions(self) -> npt.NDArray[np.float64]:
        """Particle centres in frame coordinates, wrapped into [-margin, size + margin)."""
        m = self.margin
        size = np.array([self.world[1], self.world[0]], dtype=float)
        wrapped: npt.NDArray[np.float64] = np.mod(self.unwrapped - self.fov_origin + m, size) - m
        return wrapped

    def _image(self, footprints: list[Footprint]) -> npt.NDArray[Any]:
        c = self.config
        lam_bg = 0.0 if self.beam_blanked else self.stack.background(c.frame_time_s, c.pixel_size_nm)
        frame = (0, c.shape[0], 0, c.shape[1])
        rects = merge([r for f in footprints if overlap(r := expanded(f, c.psf_radius_px), frame)])
        scale, offset = self._output_scale(lam_bg)
        if self._noise is None:
            image = self._exact(footprints, rects, lam_bg) * np.float32(scale) + np.float32(offset)
        else:
            image = self._fast(footprints, rects, lam_bg, self._noise, (scale, offset))
        return self._quantise(image)

    def _deficit(self, footprints: list[Footprint], rect: tuple[int, int, int, int], lam_bg: float) -> F32:
        """λ_bg - λ inside ``rect`` (electrons the particles absorb), before the MTF."""
        r0, r1, c0, c1 = rect
        p_sum = np.zeros((r1 - r0, c1 - c0), np.float32)  # Σ t_p / λ_p
        t_sum = np.zeros_like(p_sum)  # Σ t_p, nm
        pixel = self.config.pixel_size_nm
        for f, mfp in zip(footprints, self.mfp_nm, strict=True):
            window = clip(f, rect)
            if window is None:
                continue
            (fr, fc), (wr, wc) = window
            t_nm = f.thickness_px[fr, fc] * pixel
            p_sum[wr, wc] += t_nm / mfp
            t_sum[wr, wc] += t_nm
        water = self.stack.water_mfp_nm
        attenuation = p_sum - np.minimum(t_sum, self.stack.liquid_thickness_nm) / water
        return (lam_bg * -np.expm1(-attenuation)).astype(np.float32)

    def _fast(
        self,
        footprints: list[Footprint],
        rects: list[tuple[int, int, int, int]],
        lam_bg: float,
        bank: NoiseBank,
        output: tuple[float, float],
    ) -> F32:
        """Output-scaled image: ``scale * (mean + sqrt(mean + σ²) G) + offset``, G the MTF-filtered noise."""
        scale, offset = output
        read2 = self.stack.read_noise_e**2
        a = scale * math.sqrt(lam_bg + read2)
        if a == 0:  # no electrons and no read noise (a blanked beam on a noiseless camera): a flat frame
            return np.full(self.config.shape, np.float32(offset), np.float32)
        out = bank.affine(a, scale * lam_bg + offset, self.rng)  # background everywhere
        frame = (0, out.shape[0], 0, out.shape[1])
        for rect in rects:  # may reach beyond the frame: particles outside still blur into it
            blurred = cv2.filter2D(
                self._deficit(footprints, rect, lam_bg), -1, self._psf, borderType=cv2.BORDER_CONSTANT
            )
            inside, local = intersection(rect, frame)
            noise = (out[inside] - np.float32(scale * lam_bg + offset)) / np.float32(a)
            mean = lam_bg - blurred[local]
            out[inside] = scale * (mean + np.sqrt(np.maximum(mean + read2, 0.0)) * noise) + offset
        return out

    def _exact(
        self, footprints: list[Footprint], rects: list[tuple[int, int, int, int]], lam_bg: float
    ) -> F32:
        """Poisson + read noise on a canvas padded by the PSF core, blurred by FFT, cropped: the blur
        does not wrap around the frame, and particles just outside it still blur into it."""
        pad = 2 * self.config.psf_radius_px
        rows, cols = self.config.shape
        lam = np.full((rows + 2 * pad, cols + 2 * pad), lam_bg, dtype=np.float64)
        canvas = (-pad, rows + pad, -pad, cols + pad)
        for rect in rects:
            inside, local = intersection(rect, canvas)  # ``inside`` is in canvas indices already
            lam[inside] -= self._deficit(footprints, rect, lam_bg)[local]
        counts = self.rng.poisson(np.maximum(lam, 0.0)) + self.rng.normal(
            0.0, self.stack.read_noise_e, lam.shape
        )
        return apply_mtf(counts, self._mtf)[pad : pad + rows, pad : pad + cols]

    def _output_scale(self, lam_bg: float) -> tuple[float, float]:
        """(DN per electron, DN offset) of the output dtype (float32: electrons). uint8 frames are normalised
        one by one, like exported JPEGs: the background at 128 DN with ``uint8_sigma_dn`` noise, whatever
        the dose (a dose change shows as a change of contrast, not of brightness)."""
        c = self.config
        if c.dtype == "float32":
            return 1.0, 0.0
        if c.dtype == "uint16":
            return c.uint16_gain, c.uint16_offset
        sigma_bg = math.sqrt(lam_bg + self.stack.read_noise_e**2) * noise_std_factor()
        scale = c.uint8_sigma_dn / sigma_bg if sigma_bg > 0 else 1.0  # no electrons and no read noise: flat
        return scale, 128.0 - lam_bg * scale

    def _quantise(self, image: F32) -> npt.NDArray[Any]:
        dtype = self.config.dtype
        if dtype == "float32":
            return image
        image += np.float32(0.5)  # round half up on truncation
        np.clip(image, 0, 255 if dtype == "uint8" else 65535, out=image)
        return image.astype(dtype)

    def _truth(
        self, xy: npt.NDArray[np.float64], footprints: list[Footprint], want_labels: bool
    ) -> FrameTruth:
        rows, cols = self.config.shape
        area = np.array([coverage_inside(f, self.config.shape) for f in footprints])
        total = np.array([float(f.coverage.sum()) for f in footprints])
        visible = (xy[:, 0] >= -0.5) & (xy[:, 0] < cols - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < rows - 0.5)
        theta = np.mod(self.angles + 90.0, 180.0) - 90.0
        theta = np.where(theta <= -90.0, 90.0, theta)
        labels = self._labels(footprints) if want_labels else None
        inside = np.divide(area, total, out=np.zeros_like(area), where=total > 0)
        return FrameTruth(
            xy[:, 0].copy(), xy[:, 1].copy(), theta, area, visible, inside, self.unwrapped.copy(), labels
        )

    def _labels(self, footprints: list[Footprint]) -> npt.NDArray[np.uint16]:
        labels = np.zeros(self.config.shape, np.uint16)
        full = (0, self.config.shape[0], 0, self.config.shape[1])
        for k in np.argsort(-self.depth_nm):  # far from the detector first; nearer ones paint over
            window = clip(footprints[k], full)
            if window is not None:
                (fr, fc), (wr, wc) = window
                labels[wr, wc][footprints[k].coverage[fr, fc] >= 0.5] = k + 1
        return labels

    def metadata(self) -> dict[str, Any]:
        """Every parameter, the seed and derived quantities, JSON-ready."""
        c = self.config
        lam_bg = self.stack.background(c.frame_time_s, c.pixel_size_nm)
        d_px = c.motion.diffusion_px2_per_frame
        return {
            "seed": self.seed,
            "config": dataclasses.asdict(dataclasses.replace(c, stack=self.stack)),  # the dose now
            "derived": {
                "incident_electrons_per_px": self.stack.incident_electrons(c.frame_time_s, c.pixel_size_nm),
                "background_electrons_per_px": lam_bg,
                "background_noise_electrons": math.sqrt(lam_bg + self.stack.read_noise_e**2)
                * noise_std_factor(),
                "diffusion_px2_per_frame_alpha": d_px,
                "diffusion_nm2_per_s_alpha": d_px * c.pixel_size_nm**2 / c.frame_time_s**c.motion.alpha,
                "alpha": c.motion.alpha,
                "particle_areas_px": [footprint_area_px(s) for s in self.shapes],
            },
        }
