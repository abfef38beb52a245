"""Prepared scenes of the simulator (``lptem sim --preset``), each a :class:`SimConfig` with its ground
truth coming from the simulator as usual.

* ``crystal``: a 2-D crystal of nanocubes, N x M on a square lattice (edge and gap as parameters), each
  held at its site by a harmonic trap (Ornstein–Uhlenbeck) and rocking about the lattice's orientation,
  with optional vacancies: the scene of tracking "the centroids and orientations of the nanocubes" at
  their lattice sites, and of recovering the site's spring constant and the rotational statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.simulator import Particles, SimConfig


@dataclass(frozen=True, slots=True)
class Crystal:
    """A lattice of cubes. Lengths in nm unless the name says px."""

    rows: int = 7
    cols: int = 7
    edge_nm: float = 11.0
    gap_nm: float = 2.5
    """Between neighbouring faces (pitch = edge + gap)."""
    jiggle_px: float = 1.0
    """Stationary s.d. of each cube's offset from its site, per axis, px."""
    rocking_deg: float = 10.0
    """Stationary s.d. of each cube's angle about the lattice's orientation, degrees."""
    trap_relaxation: float = 0.2
    """Share of the offset from its site a cube loses per frame (sets how fast it jiggles)."""
    rocking_relaxation: float = 0.1
    vacancies: float = 0.0
    """Share of the sites left empty (at random, from the seed)."""
    orientation_deg: float = 0.0
    """The lattice's axes and the cubes' faces, from +x towards +y."""

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1 or self.edge_nm <= 0 or self.gap_nm < 0:
            raise ValueError("a crystal needs rows, cols >= 1, edge_nm > 0 and gap_nm >= 0")
        if not 0 <= self.vacancies < 1:
            raise ValueError("vacancies is a share of the sites in [0, 1)")

    def motion(self) -> Motion:
        """Steps whose trapped (AR(1)) stationary spread is ``jiggle_px`` and ``rocking_deg``."""
        keep_xy, keep_angle = (1 - self.trap_relaxation) ** 2, (1 - self.rocking_relaxation) ** 2
        return Motion(
            "brownian",
            sigma_px=self.jiggle_px * math.sqrt(1 - keep_xy),
            rotation_sigma_deg=self.rocking_deg * math.sqrt(1 - keep_angle),
            trap_relaxation=self.trap_relaxation,
            rocking_relaxation=self.rocking_relaxation,
        )

    def sites_px(
        self, pixel_size_nm: float, frame: tuple[int, int], seed: int
    ) -> tuple[tuple[float, float], ...]:
        """Centres of the occupied sites (x, y) in frame px, the lattice centred in the frame."""
        pitch = (self.edge_nm + self.gap_nm) / pixel_size_nm
        t = math.radians(self.orientation_deg)
        u, v = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
        centre = np.array([(frame[1] - 1) / 2, (frame[0] - 1) / 2])
        sites = [centre + pitch * ((c - (self.cols - 1) / 2) * u + (r - (self.rows - 1) / 2) * v)
                 for r in range(self.rows) for c in range(self.cols)]  # fmt: skip
        empty = round(self.vacancies * len(sites))
        keep = (
            np.sort(np.random.default_rng(seed).permutation(len(sites))[empty:])
            if empty
            else range(len(sites))
        )
        return tuple((float(sites[k][0]), float(sites[k][1])) for k in keep)

    def config(
        self, pixel_size_nm: float = 0.5, frame: tuple[int, int] = (256, 256), liquid_nm: float = 5.0,
        fps: float = 50.0, seed: int = 0,
    ) -> SimConfig:  # fmt: skip
        """The scene: cubes at the sites (face-on, no dispersity, no collisions: the traps hold them)."""
        sites = self.sites_px(pixel_size_nm, frame, seed)
        cubes = Particles(count=len(sites), shape="cube", width_nm=self.edge_nm, dispersity=0.0,
                          start_px=sites, start_angle_deg=self.orientation_deg)  # fmt: skip
        stack = Stack(liquid_thickness_nm=liquid_nm)
        return SimConfig(shape=frame, pixel_size_nm=pixel_size_nm, fps=fps, particles=cubes,
                         motion=self.motion(), collisions=False, stack=stack)  # fmt: skip
