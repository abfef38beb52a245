"""What the SAM 2 test modules share: the tiny seeded model, the two-particle clip, boxes around particles.

Each module builds its own model from these (module-scoped fixtures), so no test sees another module's
trackers or exports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lptem.engine.api import Box
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator

MODEL_SIZE = 256
"""Model input side, px: the stages are the same code at any size; 256² keeps the suites fast."""
CLIP_SHAPE = (192, 256)


def tiny_model() -> Any:
    """SAM 2.1 Hiera-T with seeded random weights (seed 0) at ``MODEL_SIZE``² input, on the CPU."""
    import torch  # noqa: PLC0415 - callers have checked that torch and sam2 exist

    from lptem.engine.sam2.models import build_model  # noqa: PLC0415

    logging.getLogger("lptem.engine.sam2.models").setLevel(logging.ERROR)  # the random-weights banner
    torch.set_num_threads(2)
    return build_model(
        "sam2.1_hiera_t", None, torch.device("cpu"), random_weights=True, image_size=MODEL_SIZE, seed=0
    )


def export_tiny(model: Any, folder: Path, **shapes: Any) -> Path:
    """``model``'s four graphs at ``MODEL_SIZE``² in ``folder``; ``shapes``: other ``StaticShapes`` fields."""
    from lptem.engine.sam2.export import export_onnx  # noqa: PLC0415 - callers have checked for torch and onnx
    from lptem.engine.sam2.staged import StaticShapes  # noqa: PLC0415

    export_onnx(model, folder, StaticShapes(MODEL_SIZE, **shapes), name="sam2.1_hiera_t", weights="random:0")
    return folder


def two_particle_clip(frames: int) -> list[Any]:
    """``frames`` simulated frames (with label maps) of two 12 nm particles in Brownian motion, seed 3."""
    config = SimConfig(
        shape=CLIP_SHAPE, particles=Particles(count=2, width_nm=12.0), motion=Motion("brownian", sigma_px=2.0)
    )
    sim = Simulator(config, seed=3)
    return [sim.next(want_labels=True) for _ in range(frames)]


def box_around(frame: Any, label: int, margin: float = 3.0) -> Box:
    """The bounding box of particle ``label`` in ``frame``'s truth labels, grown by ``margin`` px."""
    ys, xs = np.nonzero(frame.truth.labels == label)
    return Box(xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin)
