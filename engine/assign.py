"""Gated one-to-one assignment of tracked objects to detections (Hungarian on distance)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

_INFEASIBLE = 1e18


def gated_assignment(
    refs: npt.NDArray[np.float64],
    dets: npt.NDArray[np.float64],
    gates: npt.NDArray[np.float64],
    allowed: npt.NDArray[np.bool_] | None = None,
) -> list[tuple[int, int]]:
    """Pair reference points with detections minimising the total squared distance.

    ``refs`` (N, 2) and ``dets`` (M, 2) are (x, y) px; ``gates`` (N,) is the largest distance each
    reference may move (px); ``allowed`` (N, M) can forbid pairs outright. Pairs beyond their gate are
    never made, so a reference with no detection in reach stays unmatched. Returns (ref, det) indices.
    """
    if len(refs) == 0 or len(dets) == 0:
        return []
    d2 = ((refs[:, None, :] - dets[None, :, :]) ** 2).sum(axis=2)
    feasible = d2 <= (gates**2)[:, None]
    if allowed is not None:
        feasible &= allowed
    cost = np.where(feasible, d2, _INFEASIBLE)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]
