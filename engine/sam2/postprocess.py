"""From SAM 2's low-resolution mask logits to clean masks and numbers.

* ``fill_holes``: SAM 2's post-processing (``sam2.utils.misc.fill_holes_in_mask_scores``): background
  components (8-connected) of at most ``max_area`` low-res pixels become foreground with score 0.1. SAM 2
  does this with a CUDA kernel that is not built on CPU-only installs, where it silently skips it; this
  version runs everywhere (OpenCV on the 256^2 low-resolution masks).
* ``clean``: the output clean-up of docs/engines.md (after SAM-I-Am): no pixel belongs to two objects (the
  highest logit wins), and each object keeps its largest connected component. It changes what is
  published, never what SAM 2 remembers.
* ``measure``: masks at full frame resolution, on the model's device; only per-object numbers (and, on
  request, the label map) leave it. Definitions as in lptem.engine.measure.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SUPPRESSED = -10.0
"""Logit given to pixels removed by the clean-up (sigmoid = 4.5e-5, as SAM 2's non-overlap constraint)."""


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """``logits`` (B, 1, h, w): background holes of <= ``max_area`` px get score 0.1."""
    if max_area <= 0:
        return logits
    background = (logits <= 0).squeeze(1).to(torch.uint8).cpu().numpy()
    holes = np.zeros_like(background, dtype=bool)
    for b in range(background.shape[0]):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(background[b], connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_area)
        small = small[small > 0]
        if small.size:
            holes[b] = np.isin(labels, small)
    if not holes.any():
        return logits
    mask = torch.from_numpy(holes).to(logits.device)[:, None]
    return torch.where(mask, torch.tensor(0.1, dtype=logits.dtype, device=logits.device), logits)


def clean(logits: torch.Tensor) -> torch.Tensor:
    """No overlaps (highest logit wins) and one connected component per object, on (B, 1, h, w)."""
    if logits.shape[0] > 1:
        winner = logits.argmax(dim=0, keepdim=True)
        own = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None] == winner
        logits = torch.where(own, logits, logits.clamp(max=SUPPRESSED))
    foreground = (logits > 0).squeeze(1).to(torch.uint8).cpu().numpy()
    drop = np.zeros_like(foreground, dtype=bool)
    for b in range(foreground.shape[0]):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground[b], connectivity=8)
        if count > 2:
            largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            drop[b] = (labels > 0) & (labels != largest)
    if drop.any():
        mask = torch.from_numpy(drop).to(logits.device)[:, None]
        logits = torch.where(mask, logits.clamp(max=SUPPRESSED), logits)
    return logits


def to_frame(logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Low-res logits (B, 1, h, w) -> (B, H, W) at frame resolution (as the official predictor resizes)."""
    return F.interpolate(logits.float(), size=shape, mode="bilinear", align_corners=False)[:, 0]


def measure(masks: torch.Tensor, symmetry: int = 2) -> np.ndarray:
    """Per mask (B, H, W) bool: [area, x, y, mu20, mu02, mu11, x0, y0, x1, y1] as float64 on the CPU,
    plus for a ``symmetry`` other than 2 the real and imaginary parts of the complex moment that orients
    an N-fold shape (lptem.engine.measure.symmetry_moment).

    Central moments are computed about the centroid in a second pass (no cancellation in float32).
    Empty masks give area 0 and NaN elsewhere.
    """
    _, h, w = masks.shape
    m = masks.float()
    ys = torch.arange(h, device=m.device, dtype=torch.float32)
    xs = torch.arange(w, device=m.device, dtype=torch.float32)
    rows, cols = m.sum(dim=2), m.sum(dim=1)  # (B, H), (B, W)
    area = rows.sum(dim=1)
    safe = area.clamp(min=1.0)
    cy = (rows * ys).sum(dim=1) / safe
    cx = (cols * xs).sum(dim=1) / safe
    dy = ys[None, :] - cy[:, None]
    dx = xs[None, :] - cx[:, None]
    mu02 = (rows * dy**2).sum(dim=1) / safe
    mu20 = (cols * dx**2).sum(dim=1) / safe
    mu11 = torch.einsum("bhw,bh,bw->b", m, dy, dx) / safe
    y0 = torch.where(rows > 0, ys, torch.full_like(ys, h)).amin(dim=1)
    y1 = torch.where(rows > 0, ys, torch.full_like(ys, -1)).amax(dim=1) + 1
    x0 = torch.where(cols > 0, xs, torch.full_like(xs, w)).amin(dim=1)
    x1 = torch.where(cols > 0, xs, torch.full_like(xs, -1)).amax(dim=1) + 1
    columns = [area, cx, cy, mu20, mu02, mu11, x0, y0, x1, y1]
    if symmetry != 2:
        re, im = _symmetry_weights(dx[:, None, :], dy[:, :, None], symmetry)
        columns += [(m * re).sum(dim=(1, 2)), (m * im).sum(dim=(1, 2))]
    out = torch.stack(columns, dim=1).double().cpu().numpy()
    out[out[:, 0] == 0, 1:] = np.nan
    return out


def _symmetry_weights(dx: torch.Tensor, dy: torch.Tensor, symmetry: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of z^N (N >= 3) or z |z|^2 (N = 1) with z = dx + i dy, in real arithmetic
    (complex tensors are not supported on every device)."""
    if symmetry == 1:
        r2 = dx * dx + dy * dy
        return dx * r2, dy * r2
    re, im = dx * dx - dy * dy, 2 * dx * dy  # z^2
    re, im = re * re - im * im, 2 * re * im  # z^4
    if symmetry == 6:
        re, im = re * (dx * dx - dy * dy) - im * (2 * dx * dy), re * (2 * dx * dy) + im * (dx * dx - dy * dy)
    return re, im


def label_map(frame_logits: torch.Tensor, ids: list[int]) -> np.ndarray:
    """uint16 instance map from (B, H, W) frame-resolution logits (cleaned: no overlaps)."""
    if not ids:
        return np.zeros(frame_logits.shape[1:], dtype=np.uint16)
    lut = torch.tensor([0, *ids], dtype=torch.int32, device=frame_logits.device)
    best = frame_logits.argmax(dim=0)
    inside = frame_logits.amax(dim=0) > 0
    labels = torch.where(inside, lut[best + 1], torch.zeros_like(best, dtype=torch.int32))
    return labels.to(torch.int32).cpu().numpy().astype(np.uint16)
