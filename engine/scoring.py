"""Score tracked positions against ground truth: centroid error, identity switches, coverage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lptem.engine.assign import gated_assignment

F64 = npt.NDArray[np.float64]
Ints = npt.NDArray[np.integer]


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
    switches_separated: int
    """Of those, switches between particles that stayed farther apart than the contact distance
    throughout the contact window around the switch (a tracker should never make these); the others
    happened while the particles touched."""
    clean_frames: int
    """Matched frames in which the particle was *clean* (see ``score_tracks``); 0 without a mask."""
    rmse_clean_px: float
    """RMSE over the clean frames only (NaN without any)."""


@dataclass(frozen=True, slots=True)
class Contact:
    """Particles closer than ``distance_px`` touch; a switch within ``window`` frames of a touch is an
    overlap switch."""

    distance_px: float = 0.0
    window: int = 10


def score_tracks(
    frames: Ints,
    ids: Ints,
    xy: npt.NDArray[np.floating],
    truth: npt.NDArray[np.floating],
    max_distance_px: float,
    *,
    contact: Contact | None = None,
    clean: npt.NDArray[np.bool_] | None = None,
) -> list[ObjectScore]:
    """Match visible detections to truth frame by frame (Hungarian, gated) and score each object.

    ``frames``, ``ids`` (N,) and ``xy`` (N, 2) are visible rows; ``truth`` is (n_frames, n_particles, 2)
    (x, y) px with NaN where a particle is absent. ``clean`` (n_frames, n_particles) marks the frames in
    which a particle's error is the tracker's alone (e.g. fully in view and touching no other particle);
    RMSE is also reported over those.
    """
    if len(frames) and (frames.min() < 0 or frames.max() >= len(truth)):
        raise ValueError(f"frame numbers must lie in 0..{len(truth) - 1} (the ground truth's frames)")
    matched = match_to_truth(frames, np.asarray(xy, np.float64), truth, max_distance_px)
    scores = []
    for obj in np.unique(ids):
        rows = np.flatnonzero(ids == obj)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        track = _Track(int(obj), frames[rows], matched[rows], np.asarray(xy, np.float64)[rows])
        scores.append(_score(track, truth, contact or Contact(), clean))
    return scores


def match_to_truth(frames: Ints, xy: F64, truth: npt.NDArray[np.floating], max_distance_px: float) -> Ints:
    """Index of the true particle matched to each row (one-to-one per frame, gated), -1 if none."""
    matched = np.full(len(frames), -1)
    for frame in np.unique(frames):
        rows = np.flatnonzero(frames == frame)
        present = np.flatnonzero(np.isfinite(truth[frame]).all(axis=1))
        gates = np.full(len(rows), max_distance_px)
        for r, t in gated_assignment(xy[rows], truth[frame, present].astype(np.float64), gates):
            matched[rows[r]] = present[t]
    return matched


@dataclass(frozen=True, slots=True)
class _Track:
    id: int
    frames: Ints
    hits: Ints
    xy: F64


def _score(
    track: _Track, truth: npt.NDArray[np.floating], contact: Contact, clean: npt.NDArray[np.bool_] | None
) -> ObjectScore:
    valid = track.hits >= 0
    if not valid.any():
        return ObjectScore(track.id, -1, len(track.frames), 0, np.nan, np.nan, 0, 0, 0, np.nan)
    main = Counter(track.hits[valid].tolist()).most_common(1)[0][0]
    own = track.hits == main
    errors = np.hypot(*(track.xy - truth[track.frames, main]).T)
    sequence, when = track.hits[valid], track.frames[valid]
    switches = np.flatnonzero(sequence[1:] != sequence[:-1]) + 1
    separated = sum(
        _apart(truth, int(when[k]), (int(sequence[k - 1]), int(sequence[k])), contact) for k in switches
    )
    clean_own = own & clean[track.frames, main] if clean is not None else np.zeros_like(own)
    return ObjectScore(
        id=track.id,
        truth=int(main),
        frames=len(track.frames),
        matched_frames=int(own.sum()),
        rmse_px=float(np.sqrt(np.mean(errors[own] ** 2))),
        max_error_px=float(errors[own].max()),
        identity_switches=len(switches),
        switches_separated=separated,
        clean_frames=int(clean_own.sum()),
        rmse_clean_px=float(np.sqrt(np.mean(errors[clean_own] ** 2))) if clean_own.any() else np.nan,
    )


def _apart(truth: npt.NDArray[np.floating], frame: int, pair: tuple[int, int], contact: Contact) -> bool:
    """Whether the two particles stay farther apart than the contact distance near ``frame``."""
    lo, hi = max(0, frame - contact.window), min(len(truth), frame + contact.window + 1)
    gap = np.hypot(*(truth[lo:hi, pair[0]] - truth[lo:hi, pair[1]]).T)
    return not bool(np.any(gap <= contact.distance_px))  # NaN (out of view) is not contact
