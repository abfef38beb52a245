"""Engine-side types and the tracker protocol every engine implements.

Coordinates follow skimage/trackpy: ``x`` is the column, ``y`` the row, and the origin is the centre of
pixel (0, 0). All lengths are in pixels; conversion to nm happens in the service, where the pixel size of
the incoming frames is known.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.generic]
"""A 2-D grayscale frame (uint8, uint16 or float32), shape (rows, cols)."""

LabelMap = npt.NDArray[np.uint16]
"""Instance label map at frame resolution: 0 is background, k > 0 is the object with id k."""


class PromptError(ValueError):
    """A prompt that cannot be applied (empty, outside the frame, malformed)."""


class UnknownObjectError(KeyError):
    """An object id that the tracker does not know."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want a readable sentence
        return str(self.args[0]) if self.args else "unknown object"


MAX_OBJECT_ID = 65535
"""Object ids live in 1..65535: label maps are uint16 and the control protocol addresses them so."""


class IdAllocator:
    """Hands out object ids in 1..MAX_OBJECT_ID: the next unused one, wrapping around to free ids."""

    def __init__(self) -> None:
        self._next = 1

    def allocate(self, in_use: Collection[int]) -> int:
        """The next id not in ``in_use`` (a set of ids or a dict keyed by id)."""
        if len(in_use) >= MAX_OBJECT_ID:
            raise PromptError(f"all {MAX_OBJECT_ID} object ids are in use")
        candidate = self._next
        while candidate in in_use:
            candidate = candidate % MAX_OBJECT_ID + 1
        self._next = candidate % MAX_OBJECT_ID + 1
        return candidate

    def claim(self, obj_id: int) -> None:
        """A caller chose ``obj_id`` explicitly; continue after it."""
        if not 1 <= obj_id <= MAX_OBJECT_ID:
            raise PromptError(f"object ids are 1..{MAX_OBJECT_ID}, got {obj_id}")
        self._next = max(self._next, obj_id % MAX_OBJECT_ID + 1)

    def reset(self) -> None:
        self._next = 1


@dataclass(frozen=True, slots=True)
class PointPrompt:
    """A click at (x, y) px; ``positive`` clicks mark the object, negative ones the background."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, ``x0 <= x1`` and ``y0 <= y1`` (SAM's xyxy convention)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(v) for v in values):
            raise PromptError(f"box coordinates must be finite numbers, got {values}")
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise PromptError(f"box must satisfy x0 <= x1 and y0 <= y1, got {values}")

    @property
    def centre(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the user (or the automatic detector) says about one object: a box and/or points."""

    box: Box | None = None
    points: tuple[PointPrompt, ...] = ()

    def __post_init__(self) -> None:
        if self.box is None and not self.points:
            raise PromptError("a prompt needs a box or at least one point")
        for p in self.points:
            if not (math.isfinite(p.x) and math.isfinite(p.y)):
                raise PromptError(f"point coordinates must be finite numbers, got ({p.x}, {p.y})")
        if self.box is None and not any(p.positive for p in self.points):
            raise PromptError("a prompt without a box needs at least one positive point")

    def anchor(self) -> tuple[float, float]:
        """Best single guess of the object centre (x, y) px: mean positive click, else box centre."""
        positives = [p for p in self.points if p.positive]
        if positives:
            return (
                float(np.mean([p.x for p in positives])),
                float(np.mean([p.y for p in positives])),
            )
        assert self.box is not None  # guaranteed by __post_init__
        return self.box.centre

    def bbox(self) -> tuple[int, int, int, int]:
        """Integer bounds (x0, y0, x1, y1), ends exclusive, of the box or else of the points."""
        if self.box is not None:
            b = self.box
            return (math.floor(b.x0), math.floor(b.y0), math.floor(b.x1) + 1, math.floor(b.y1) + 1)
        xs = [p.x for p in self.points]
        ys = [p.y for p in self.points]
        return (math.floor(min(xs)), math.floor(min(ys)), math.floor(max(xs)) + 1, math.floor(max(ys)) + 1)

    def check_within(self, shape: tuple[int, int]) -> None:
        """Raise PromptError unless the whole prompt lies in a frame of ``shape`` = (rows, cols) (pixel
        centres from 0, so coordinates in [-0.5, side - 0.5])."""
        rows, cols = shape
        xs = [p.x for p in self.points] + ([self.box.x0, self.box.x1] if self.box is not None else [])
        ys = [p.y for p in self.points] + ([self.box.y0, self.box.y1] if self.box is not None else [])
        if not all(-0.5 <= x <= cols - 0.5 for x in xs) or not all(-0.5 <= y <= rows - 0.5 for y in ys):
            raise PromptError(f"the prompt must lie within a {cols}x{rows} px frame")

    def check_inside(self, shape: tuple[int, int]) -> None:
        """Raise PromptError unless the prompt touches the frame of ``shape`` = (rows, cols)."""
        rows, cols = shape
        if self.box is not None:
            b = self.box
            if b.x1 < -0.5 or b.y1 < -0.5 or b.x0 > cols - 0.5 or b.y0 > rows - 0.5:
                raise PromptError(f"box {b} lies outside the {cols}x{rows} frame")
        for p in self.points:
            if not (-0.5 <= p.x <= cols - 0.5 and -0.5 <= p.y <= rows - 0.5):
                raise PromptError(f"point ({p.x}, {p.y}) lies outside the {cols}x{rows} frame")


@dataclass(frozen=True, slots=True)
class Measurement:
    """Numbers measured on one object's mask (see lptem.engine.measure for definitions).

    ``theta_deg`` is the orientation of the mask's major axis, degrees in (-90, 90], measured from the +x
    axis (columns) towards +y (rows). Because rows grow downwards on screen, positive angles are clockwise
    as displayed.
    """

    x: float
    y: float
    theta_deg: float
    area_px: float
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1) with x1, y1 exclusive, px."""


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """One object in one frame. When ``visible`` is False the numbers repeat the last known position."""

    id: int
    x: float
    y: float
    theta_deg: float
    area_px: float
    bbox: tuple[int, int, int, int]
    score: float
    visible: bool


@dataclass(frozen=True, slots=True)
class StepResult:
    """Everything a tracker reports about one frame."""

    objects: tuple[ObjectResult, ...]
    labels: LabelMap | None = None
    """Instance label map, only when ``step(..., want_labels=True)``."""
    added_ids: tuple[int, ...] = ()
    """Objects the tracker created by itself on this frame (automatic detection)."""
    removed_ids: tuple[int, ...] = ()
    """Objects the tracker dropped by itself on this frame (auto-detected objects lost for too long)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``list_objects`` reports about one tracked object."""

    id: int
    source: str
    """``"prompt"`` (added by a user) or ``"auto"`` (proposed by the detector)."""
    frames_tracked: int
    frames_missing: int
    last: ObjectResult | None = field(default=None)


@runtime_checkable
class Tracker(Protocol):
    """A per-frame tracker session. Not thread-safe: the daemon calls it from one thread only."""

    name: str

    def add_object(self, prompt: Prompt, obj_id: int | None = None) -> int:
        """Add an object (or correct an existing id) from the next frame on; return its id."""
        ...

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking ``obj_id``; raise UnknownObjectError if it is not tracked."""
        ...

    def objects(self) -> tuple[ObjectInfo, ...]:
        """The tracked objects, ordered by id."""
        ...

    def set_auto_detect(self, enabled: bool) -> None:
        """Let the tracker propose objects itself (first frame and new particles entering)."""
        ...

    @property
    def auto_detect(self) -> bool: ...

    def step(self, frame: Frame, *, want_labels: bool = False) -> StepResult:
        """Process the next frame of the stream."""
        ...

    def reset(self) -> None:
        """Forget all objects and all per-stream state."""
        ...

    def settings(self) -> dict[str, Any]:
        """What the tracker chose for itself while running (e.g. an estimated particle radius), for
        status; units in the keys. Empty when it chooses nothing."""
        ...
