"""Score tracked positions against ground truth: centroid error, identity switches, coverage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.assign import gated_assignment


@dataclass(frozen=True, slots=True)
class ObjectScore:
    id: int
    truth: int
    """The ground-truth particle this object followed most often (-1: never matched)."""
    frames: int
    """Frames in which the object was reported visible."""
    matched_frames: int
    """Of those, frames in which it was matched to its ``truth`` particle."""
    rmse_px: float
    max_error_px: float
    identity_switches: int
    """Times the matched ground-truth particle changed between consecutive matched frames."""


def score_tracks(
    frames: npt.NDArray[np.integer],
    ids: npt.NDArray[np.integer],
    xy: npt.NDArray[np.floating],
    truth: npt.NDArray[np.floating],
    max_distance_px: float,
) -> list[ObjectScore]:
    """Match visible detections to truth frame by frame (Hungarian, gated) and score each object.

    ``frames``, ``ids`` (N,) and ``xy`` (N, 2) are visible rows; ``truth`` is (n_frames, n_particles, 2)
    (x, y) px with NaN where a particle is absent.
    """
    if len(frames) and (frames.min() < 0 or frames.max() >= len(truth)):
        raise ValueError(f"frame numbers must lie in 0..{len(truth) - 1} (the ground truth's frames)")
    matched = np.full(len(frames), -1)
    for frame in np.unique(frames):
        rows = np.flatnonzero(frames == frame)
        present = np.flatnonzero(np.isfinite(truth[frame]).all(axis=1))
        pairs = gated_assignment(
            xy[rows].astype(np.float64),
            truth[frame, present].astype(np.float64),
            np.full(len(rows), max_distance_px),
        )
        for r, t in pairs:
            matched[rows[r]] = present[t]
    scores = []
    for obj in np.unique(ids):
        rows = np.flatnonzero(ids == obj)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        offsets = xy[rows][:, None, :] - truth[frames[rows]]  # (rows, particles, 2)
        scores.append(_score_object(int(obj), rows, matched[rows], offsets))
    return scores


def _score_object(
    obj: int, rows: npt.NDArray[np.intp], hits: npt.NDArray[np.integer], offsets: npt.NDArray[np.floating]
) -> ObjectScore:
    """``hits``: matched truth index per row (-1 none); ``offsets``: (rows, particles, 2) position - truth."""
    valid = hits >= 0
    if not valid.any():
        return ObjectScore(obj, -1, len(rows), 0, float("nan"), float("nan"), 0)
    main = Counter(hits[valid].tolist()).most_common(1)[0][0]
    own = hits == main
    errors = np.hypot(*offsets[own, main].T)
    sequence = hits[valid]
    switches = int(np.count_nonzero(sequence[1:] != sequence[:-1]))
    return ObjectScore(
        id=obj,
        truth=int(main),
        frames=len(rows),
        matched_frames=int(own.sum()),
        rmse_px=float(np.sqrt(np.mean(errors**2))),
        max_error_px=float(errors.max()),
        identity_switches=switches,
    )
