"""A stand-in for DigitalMicrograph's ``DigitalMicrograph`` module: only the calls dm_sender makes, with
the argument and return shapes of Gatan's Python examples (camera manager: ``GetActiveCamera``,
``CreateImageForAcquire(binx, biny, processing)``, ``StartContinuousAcquisition(exposure, binx, biny,
processing)``, ``GetFrameInContinuousMode(image, max_wait_s) -> bool``, ``StopContinuousAcquisition``;
images: ``GetNumArray`` (the image's own memory, not a copy), ``GetDimensionCalibration(dim, 0) ->
(origin, scale, unit)``, ``GetTagGroup().GetTagAsFloat(path) -> (found, value)``).

The camera writes a bright disc that moves 1 px per frame into the same image memory every frame. Set
``CONFIG`` (or, for a separate process, the STANDIN_* environment variables) before use.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

CONFIG: dict[str, Any] = {
    "frames": int(os.environ.get("STANDIN_FRAMES", "30")),  # then the camera stops delivering
    "shape": (128, 160),
    "dtype": os.environ.get("STANDIN_DTYPE", "uint16"),
    "scale": float(os.environ.get("STANDIN_SCALE", "0.0012")),
    "unit": b"\xb5m" if os.environ.get("STANDIN_UNIT_BYTES") else os.environ.get("STANDIN_UNIT", "µm"),
    "exposure_tag": float(os.environ.get("STANDIN_EXPOSURE_TAG", "0.02")),  # <= 0: no tag
}
CALLS: list[str] = []
"""Every camera call, in order (for the tests)."""


class Py_TagGroup:
    def __init__(self, tags: dict[str, float]) -> None:
        self._tags = tags

    def GetTagAsFloat(self, path: str) -> tuple[bool, float]:
        return (True, self._tags[path]) if path in self._tags else (False, 0.0)


class Py_Image:
    def __init__(self, shape: tuple[int, int], dtype: str) -> None:
        self._data = np.zeros(shape, dtype)
        exposure = CONFIG["exposure_tag"]
        tags = {"Acquisition:Parameters:High Level:Exposure (s)": exposure} if exposure > 0 else {}
        self._tags = Py_TagGroup(tags)

    def GetNumArray(self) -> np.ndarray:
        return self._data

    def GetDimensionCalibration(self, dimension: int, calibration_display: int) -> tuple[float, float, Any]:
        return 0.0, CONFIG["scale"], CONFIG["unit"]

    def GetTagGroup(self) -> Py_TagGroup:
        return self._tags


class Py_Camera:
    def __init__(self) -> None:
        self._running = False
        self._index = 0

    def CreateImageForAcquire(self, binx: int, biny: int, processing: int) -> Py_Image:
        CALLS.append(f"CreateImageForAcquire({binx}, {biny}, {processing})")
        rows, cols = CONFIG["shape"]
        return Py_Image((rows // biny, cols // binx), CONFIG["dtype"])

    def StartContinuousAcquisition(self, exposure: float, binx: int, biny: int, processing: int) -> None:
        CALLS.append(f"StartContinuousAcquisition({exposure}, {binx}, {biny}, {processing})")
        self._running = True

    def GetFrameInContinuousMode(self, image: Py_Image, max_wait_s: float) -> bool:
        if not self._running or self._index >= CONFIG["frames"]:
            return False
        rows, cols = image._data.shape
        yy, xx = np.mgrid[0:rows, 0:cols]
        disc = (xx - 20 - self._index) ** 2 + (yy - rows / 2) ** 2 < 8**2
        image._data[...] = np.where(disc, 1000, 100).astype(image._data.dtype)  # in place, as DM does
        self._index += 1
        return True

    def StopContinuousAcquisition(self) -> None:
        CALLS.append("StopContinuousAcquisition()")
        self._running = False


def GetActiveCamera() -> Py_Camera:
    return Py_Camera()
