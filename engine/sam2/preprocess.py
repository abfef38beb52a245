"""Frames to SAM 2 input, on the model's device.

Grayscale uint8 / uint16 / float32 frames are normalised to [0, 1], replicated to three channels,
resized to the model's square input (bilinear, antialiased) and normalised with ImageNet's mean and s.d.,
as SAM 2 was trained. Normalisation:

* ``robust`` (default): the 0.5th and 99.5th percentiles map to 0 and 1 (clipped). LPTEM frames use a
  sliver of their dtype's range, at a contrast-to-noise of about 1; this spreads them as an 8-bit JPEG
  export (SAM-EM's training data) would.
* ``none``: uint8 / 255, uint16 / 65535, float32 as is, like SAM 2's own JPEG loader.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalization = Literal["robust", "none"]
_SAMPLE = 65536  # pixels used for the percentiles


class Preprocessor:
    def __init__(self, image_size: int, device: torch.device, normalization: Normalization = "robust",
                 percentiles: tuple[float, float] = (0.5, 99.5)) -> None:  # fmt: skip
        self.image_size = image_size
        self.device = device
        self.normalization = normalization
        self.quantiles = torch.tensor([p / 100 for p in percentiles], device=device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device)[None, :, None, None]
        self.std = torch.tensor(IMAGENET_STD, device=device)[None, :, None, None]

    def unit_range(self, frame: npt.NDArray[np.generic]) -> torch.Tensor:
        """The frame on the device as float32 in [0, 1] (robust) or its dtype's natural scale (none)."""
        pixels = torch.from_numpy(np.array(frame, copy=True)).to(self.device).float()
        if self.normalization == "none":
            scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(frame.dtype, 1.0)
            return pixels / scale
        flat = pixels.flatten()
        sample = flat[:: max(1, flat.numel() // _SAMPLE)]
        lo, hi = torch.quantile(sample, self.quantiles)
        unit: torch.Tensor = ((pixels - lo) / (hi - lo).clamp(min=1e-6)).clamp(0.0, 1.0)
        return unit

    def __call__(self, frame: npt.NDArray[np.generic]) -> torch.Tensor:
        """(1, 3, S, S) float32 model input."""
        if frame.ndim != 2:
            raise ValueError(f"SAM 2 engine takes 2-D grayscale frames, got shape {frame.shape}")
        unit = self.unit_range(frame)[None, None]
        size = (self.image_size, self.image_size)
        resized = F.interpolate(unit, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (resized.expand(1, 3, *size) - self.mean) / self.std
