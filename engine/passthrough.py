"""Pass-through tracker: touches no pixel. Reports each prompted object at its prompt's anchor.

Used to measure the daemon's own overhead (benchmarks/overhead.py): results have the size and shape of
real ones, but the engine costs nothing.
"""

from __future__ import annotations

from typing import Any

from lptem.engine.api import (
    Frame,
    IdAllocator,
    ObjectInfo,
    ObjectResult,
    Prompt,
    StepResult,
    UnknownObjectError,
)


class PassThroughTracker:
    """Implements :class:`lptem.engine.api.Tracker`; ``auto_detect`` is accepted and has no effect."""

    name = "passthrough"

    def __init__(self) -> None:
        self._objects: dict[int, ObjectResult] = {}
        self._frames: dict[int, int] = {}
        self._auto_detect = False
        self._ids = IdAllocator()

    def add_object(self, prompt: Prompt, obj_id: int | None = None) -> int:
        if obj_id is None:
            obj_id = self._ids.allocate(self._objects)
        else:
            self._ids.claim(obj_id)
        x, y = prompt.anchor()
        self._objects[obj_id] = ObjectResult(obj_id, x, y, 0.0, 0.0, prompt.bbox(), 1.0, True)
        self._frames.setdefault(obj_id, 0)
        return obj_id

    def remove_object(self, obj_id: int) -> None:
        if self._objects.pop(obj_id, None) is None:
            raise UnknownObjectError(f"no object with id {obj_id}")
        del self._frames[obj_id]

    def objects(self) -> tuple[ObjectInfo, ...]:
        return tuple(ObjectInfo(i, "prompt", self._frames[i], 0, o) for i, o in sorted(self._objects.items()))

    @property
    def auto_detect(self) -> bool:
        return self._auto_detect

    def set_auto_detect(self, enabled: bool) -> None:
        self._auto_detect = enabled

    def step(self, frame: Frame, *, want_labels: bool = False) -> StepResult:
        for obj_id in self._frames:
            self._frames[obj_id] += 1
        return StepResult(tuple(o for _, o in sorted(self._objects.items())))

    def reset(self) -> None:
        self._objects.clear()
        self._frames.clear()
        self._ids = IdAllocator()

    def settings(self) -> dict[str, Any]:
        return {}  # nothing chosen at run time
