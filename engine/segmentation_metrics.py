"""Video-object-segmentation scores, as the DAVIS benchmark defines them.

* J: region similarity, the Jaccard index (IoU) of predicted and true masks.
* F: contour accuracy: precision and recall of the predicted boundary against the true one, a boundary
  pixel counting as matched when it lies within ``bound_px`` of the other boundary; F = 2PR / (P + R).
  DAVIS sets ``bound_px = ceil(0.008 * image diagonal)`` (12 px at 1024^2).

Empty masks follow DAVIS: both empty -> 1, exactly one empty -> 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]


def davis_bound_px(shape: tuple[int, ...]) -> int:
    return math.ceil(0.008 * math.hypot(shape[0], shape[1]))


def jaccard(pred: Mask, truth: Mask) -> float:
    union = np.count_nonzero(pred | truth)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & truth) / union)


def boundary(mask: Mask) -> Mask:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    padded = np.pad(mask, 1).view(np.uint8)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edge: Mask = (padded.astype(bool) & ~np.asarray(eroded, dtype=bool))[1:-1, 1:-1]
    return edge


def boundary_f(pred: Mask, truth: Mask, bound_px: int) -> float:
    bp, bt = boundary(pred), boundary(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * bound_px + 1, 2 * bound_px + 1))
    near_truth = cv2.dilate(bt.view(np.uint8), disk).astype(bool)
    near_pred = cv2.dilate(bp.view(np.uint8), disk).astype(bool)
    precision = np.count_nonzero(bp & near_truth) / np.count_nonzero(bp)
    recall = np.count_nonzero(bt & near_pred) / np.count_nonzero(bt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
