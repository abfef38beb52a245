"""Our streaming loop against the official sam2 video predictor, on the same model and the same frames.

Both sides run one model (seeded random weights in the tests and the GPU check), so a difference is a
difference of the tracking loop. Used by tests/engine/sam2/test_tracker.py (CPU, float32) and
benchmarks/gpu/check.py (CUDA, float32 and bfloat16 autocast on both sides).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from lptem.engine.api import Box, Prompt
from lptem.engine.sam2.tracker import Sam2Config, Sam2Tracker

Prompts = dict[int, list[tuple[int, Prompt]]]
"""Frame index -> [(object id, prompt)]."""


def upsample(logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Low-resolution mask logits at frame resolution (the predictor's own resizing)."""
    return F.interpolate(logits.float(), size=shape, mode="bilinear", align_corners=False)[0, 0]


def stream_ours(
    model: Any, frames: Sequence[npt.NDArray[Any]], prompts: Prompts, config: Sam2Config
) -> tuple[list[dict[int, torch.Tensor]], Sam2Tracker]:
    """Stream ``frames`` through our tracker; per frame {id: frame-resolution logits} before the clean-up."""
    tracker = Sam2Tracker(config, model=model)
    shape = (int(frames[0].shape[0]), int(frames[0].shape[1]))
    out = []
    for i, frame in enumerate(frames):
        for obj_id, prompt in prompts.get(i, []):
            tracker.add_object(prompt, obj_id)
        tracker.step(frame)
        out.append({k: upsample(v, shape) for k, v in tracker.raw_logits.items()})
    return out, tracker


def official_state(model: Any, frames: Sequence[npt.NDArray[Any]], config: Sam2Config) -> dict[str, Any]:
    """An official inference state over exactly the frames our tracker sees (our preprocessing)."""
    preprocess = Sam2Tracker(config, model=model).preprocess
    with tempfile.TemporaryDirectory() as folder:
        for i in range(len(frames)):  # init_state reads a JPEG folder; its images are replaced below
            cv2.imwrite(str(Path(folder) / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
        state: dict[str, Any] = model.init_state(folder)
    state["images"] = torch.cat([preprocess(f) for f in frames])
    state["cached_features"] = {}
    state["video_height"], state["video_width"] = frames[0].shape[:2]
    return state


def autocast_like(config: Sam2Config, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The predictor under the same precision as our tracker (bfloat16 autocast on CUDA when asked)."""
    if device.type == "cuda" and config.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def official_stream(
    model: Any,
    state: dict[str, Any],
    boxes: dict[int, Box],
    precision: contextlib.AbstractContextManager[Any],
) -> list[torch.Tensor]:
    """Box-prompt ``boxes`` on frame 0 and propagate; per frame the (objects, 1, H, W) logits."""
    with torch.inference_mode(), precision:
        for obj_id, b in boxes.items():
            model.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, box=[b.x0, b.y0, b.x1, b.y1])
        return [masks.float() for _, _, masks in model.propagate_in_video(state)]


@dataclass(frozen=True, slots=True)
class Agreement:
    max_logit_difference: float
    sign_agreement: float
    """Share of pixels, where either side is decided (|logit| > tolerance), whose mask signs agree."""
    min_iou: float
    """The worst mask IoU (logit > 0) over frames and objects."""


def agreement(
    ours: list[dict[int, torch.Tensor]], official: list[torch.Tensor], ids: Sequence[int], tolerance: float
) -> Agreement:
    worst_diff, agree, decided, worst_iou = 0.0, 0, 0, 1.0
    for mine, theirs in zip(ours, official, strict=True):
        for index, obj_id in enumerate(ids):
            a, b = mine[obj_id].cpu(), theirs[index, 0].cpu()
            worst_diff = max(worst_diff, float((a - b).abs().max()))
            sure = (a.abs() > tolerance) | (b.abs() > tolerance)
            agree += int(((a > 0) == (b > 0))[sure].sum())
            decided += int(sure.sum())
            union = int(((a > 0) | (b > 0)).sum())
            if union:
                worst_iou = min(worst_iou, int(((a > 0) & (b > 0)).sum()) / union)
    return Agreement(worst_diff, agree / decided if decided else 1.0, worst_iou)
