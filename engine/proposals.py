"""Automatic object proposals: detections become objects only after they persist for a few frames.

Noise peaks rarely repeat at the same place; particles do. Shared by the classical tracker and the SAM 2
engine (which turns confirmed detections into box prompts, as detector-plus-tracker pipelines do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lptem.engine.assign import gated_assignment
from lptem.engine.detection import Detection


@dataclass(slots=True)
class _Candidate:
    detection: Detection
    hits: int = 1


class CandidateConfirmer:
    """Follows unclaimed detections from frame to frame (gated) until ``confirm_frames`` in a row."""

    def __init__(self, gate_px: float, confirm_frames: int) -> None:
        self.gate_px = gate_px
        self.confirm_frames = confirm_frames
        self._candidates: list[_Candidate] = []

    def confirm(self, free: list[Detection]) -> list[int]:
        """Feed this frame's unclaimed detections; return the indices (into ``free``) now confirmed."""
        refs = np.array([(c.detection.measurement.x, c.detection.measurement.y) for c in self._candidates])
        dets = np.array([(d.measurement.x, d.measurement.y) for d in free])
        gates = np.full(len(refs), self.gate_px)
        pairs = gated_assignment(refs.reshape(-1, 2), dets.reshape(-1, 2), gates)
        followed = {j: self._candidates[i].hits + 1 for i, j in pairs}
        confirmed = [j for j in range(len(free)) if followed.get(j, 1) >= self.confirm_frames]
        self._candidates = [
            _Candidate(d, followed.get(j, 1)) for j, d in enumerate(free) if j not in confirmed
        ]
        return confirmed

    def clear(self) -> None:
        self._candidates.clear()
