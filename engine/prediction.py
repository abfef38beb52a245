"""Where a tracked object should be in the next frame, and how far from there it may plausibly be.

Each object keeps its last few displacements (px per frame, between the frames it was seen in). The
prediction is the last position plus the mean displacement (a drift or a steady flow carries over; a
diffusing particle's mean step is near zero), and the gate is a multiple of the spread of the
displacements about that mean, so that a particle jumping 30 px per frame is searched for 90 px away and a
nearly still one only within its own size. Frames in which the object was not seen widen the gate like a
random walk (``sqrt(1 + frames missing)``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

SPREADS_PER_GATE = 3.0
"""Gate radius in units of the displacement spread (RMS distance of a step from the mean step)."""
MIN_STEPS = 4
"""Displacements needed before the spread alone sets the gate; before that the gate is at least the
initial one."""


@dataclass(slots=True)
class StepHistory:
    """The recent motion of one object, in frame indices of the tracker's own count (dropped frames
    between two processed ones are not seen by the tracker; a step is per processed frame)."""

    length: int = 10
    """Displacements kept (a window of the object's recent behaviour)."""
    _steps: deque[tuple[float, float]] = field(init=False)
    """Displacement per frame (a drift's rate) of each step."""
    _diffusive: deque[tuple[float, float]] = field(init=False)
    """The same steps scaled as a random walk would be (a jump over k frames divided by sqrt(k)): the
    samples of the spread, so that a gap in the sightings does not make the motion look calmer."""
    _last: tuple[int, float, float] | None = field(default=None, init=False)
    _spread: float | None = field(default=None, init=False)
    """:meth:`spread` and :meth:`mean_step`, kept until the steps change (asked for several times a
    frame)."""
    _mean: tuple[float, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._steps = deque(maxlen=self.length)
        self._diffusive = deque(maxlen=self.length)

    def add(self, index: int, x: float, y: float) -> None:
        """The object was seen at (x, y) px in frame ``index``."""
        if self._last is not None and index > self._last[0]:
            i0, x0, y0 = self._last
            frames = index - i0
            self._steps.append(((x - x0) / frames, (y - y0) / frames))
            root = math.sqrt(frames)
            self._diffusive.append(((x - x0) / root, (y - y0) / root))
            self._spread = self._mean = None
        self._last = (index, x, y)

    def __len__(self) -> int:
        """Displacements known."""
        return len(self._diffusive)

    def clear(self) -> None:
        """Forget the motion (a correction moved the object elsewhere)."""
        self._steps.clear()
        self._diffusive.clear()
        self._last = None
        self._spread = self._mean = None

    def mean_step(self) -> tuple[float, float]:
        if self._mean is None:
            n = len(self._steps)
            self._mean = (0.0, 0.0) if n == 0 else (sum(s[0] for s in self._steps) / n,
                                                    sum(s[1] for s in self._steps) / n)  # fmt: skip
        return self._mean

    def predict(self, index: int) -> tuple[float, float] | None:
        """Expected position in frame ``index`` (None before the first sighting)."""
        if self._last is None:
            return None
        i0, x0, y0 = self._last
        dx, dy = self.mean_step()
        frames = max(0, index - i0)
        return x0 + dx * frames, y0 + dy * frames

    def spread(self) -> float | None:
        """RMS distance (px per frame) of a step from the mean step, unbiased (n − 1); with one step its
        length; None before the first step."""
        if self._spread is None:
            self._spread = self._compute_spread()
        return self._spread if self._spread >= 0 else None

    def _compute_spread(self) -> float:
        """:meth:`spread`, -1 for none."""
        n = len(self._diffusive)
        if n == 0:
            return -1.0
        if n == 1:
            sx, sy = self._diffusive[0]
            return math.hypot(sx, sy)
        mx = sum(s[0] for s in self._diffusive) / n
        my = sum(s[1] for s in self._diffusive) / n
        return math.sqrt(sum((sx - mx) ** 2 + (sy - my) ** 2 for sx, sy in self._diffusive) / (n - 1))

    def gate(self, floor_px: float, initial_px: float, frames_missing: int, growth_cap: float) -> float:
        """Search radius (px) around :meth:`predict`: ``SPREADS_PER_GATE`` spreads and at least
        ``floor_px`` (the object's own size); at least ``initial_px`` until ``MIN_STEPS`` steps are
        known; widened by ``sqrt(1 + frames_missing)`` up to ``growth_cap`` times."""
        spread = self.spread()
        base = max(floor_px, SPREADS_PER_GATE * spread) if spread is not None else floor_px
        if len(self._diffusive) < MIN_STEPS:
            base = max(base, initial_px)
        return base * min(math.sqrt(1.0 + frames_missing), growth_cap)
