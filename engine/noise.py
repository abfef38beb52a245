"""Noise level of filtered frames: a robust s.d. and its increase near the frame border."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

MAD_TO_SIGMA = 1.4826
"""S.d. of a Gaussian from its median absolute deviation."""


def border_noise_factor(ksize: int, sigma: float) -> npt.NDArray[np.float64]:
    """Noise s.d. of a 1-D Gaussian smoothing at distance d from the border, over the interior value.

    OpenCV pads by reflection (BORDER_REFLECT_101), so near the border some pixels enter the kernel
    twice and white noise comes out with a larger s.d. Entry d (0 = the border pixel) gives the factor;
    the last entry is 1 (interior).
    """
    weights = cv2.getGaussianKernel(ksize, sigma).ravel()
    half = ksize // 2
    factors = []
    for d in range(half + 1):
        taps = np.zeros(ksize + half)
        for k, w in enumerate(weights):
            taps[abs(d + k - half)] += w
        factors.append(math.sqrt(float((taps**2).sum() / (weights**2).sum())))
    return np.array(factors)


def robust_sigma(image: npt.NDArray[np.float32], stride: int = 8) -> float:
    """Noise s.d. from the median absolute deviation of a strided subsample (robust to particles)."""
    sample = image[::stride, ::stride].ravel()
    median = float(np.median(sample))
    return MAD_TO_SIGMA * float(np.median(np.abs(sample - median)))
