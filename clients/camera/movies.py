"""Recorded movies as frame sources: TIFF stacks, folders of numbered JPEG/PNG/TIFF images (SAM-EM's
layout), and ``.npy`` arrays. Frames are read lazily, one at a time, so a movie larger than memory
replays fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import tifffile

from lptem.clients.camera.em_formats import READERS, DmFolderMovie, EmMovie, dm_files
from lptem.clients.camera.movie_api import (
    Closing,
    Movie,
    MovieError,
    as_wire_frame,
    iter_frames,
    natural_key,
)

__all__ = ["Movie", "MovieError", "as_wire_frame", "iter_frames", "open_movie"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclass
class NpyMovie(Closing):
    path: Path

    def __post_init__(self) -> None:
        try:
            self._data = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MovieError(f"{self.path}: not a readable .npy array ({exc})") from exc
        if self._data.ndim == 2:
            self._data = self._data[None]
        if self._data.ndim != 3:
            raise MovieError(f"{self.path}: expected (frames, rows, cols), got shape {self._data.shape}")

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def frame(self, index: int) -> npt.NDArray[Any]:
        return as_wire_frame(np.asarray(self._data[index]))


@dataclass
class TiffMovie(Closing):
    path: Path

    def __post_init__(self) -> None:
        try:
            self._tif = tifffile.TiffFile(self.path)
        except (OSError, ValueError, tifffile.TiffFileError) as exc:
            raise MovieError(f"{self.path}: not a readable TIFF ({exc})") from exc
        try:
            if not self._tif.series:
                raise MovieError(f"{self.path}: TIFF holds no image series")
            self._open(self._tif.series[0])
        except BaseException:
            self._tif.close()
            raise

    def _open(self, series: Any) -> None:
        shape = series.shape
        all_series = self._tif.series
        if len(shape) == 2 and all(s.shape == shape for s in all_series):
            self._frames = [s.pages[0] for s in all_series]  # one 2-D series per frame (appended)
        elif len(shape) == 3 and len(series.pages) == shape[0]:
            self._frames = list(series.pages)
        elif len(shape) == 3:  # frames not one per page: map the file if uncompressed, else load it
            self._stack = tifffile.memmap(self.path) if series.dataoffset else series.asarray()
            self._frames = []
        else:
            raise MovieError(f"{self.path}: expected a stack of 2-D frames, got shape {shape}")
        self._n = len(self._frames) or int(shape[0])

    def close(self) -> None:
        self._tif.close()

    def __len__(self) -> int:
        return int(self._n)

    def frame(self, index: int) -> npt.NDArray[Any]:
        if not self._frames:
            return as_wire_frame(np.asarray(self._stack[index]))
        page = self._frames[index]
        if page is None:
            raise MovieError(f"{self.path}: frame {index} has no image data")
        return as_wire_frame(page.asarray())


@dataclass
class FolderMovie(Closing):
    path: Path

    def __post_init__(self) -> None:
        self._files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key
        )
        if not self._files:
            raise MovieError(f"{self.path}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")

    def __len__(self) -> int:
        return len(self._files)

    def frame(self, index: int) -> npt.NDArray[Any]:
        file = self._files[index]
        image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise MovieError(f"{file}: unreadable image")
        return as_wire_frame(image)


def open_movie(path: Path | str) -> Movie:
    """The movie at ``path``, by its suffix (a folder: DigitalMicrograph files or numbered images)."""
    path = Path(path)
    if path.is_dir():
        return DmFolderMovie(path) if dm_files(path) else FolderMovie(path)
    if not path.exists():
        raise MovieError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyMovie(path)
    if suffix in (".tif", ".tiff"):
        return TiffMovie(path)
    if suffix in READERS:
        return EmMovie(path)
    raise MovieError(
        f"{path}: unsupported movie; use a TIFF stack, a .npy array, a folder of images, or an EM file "
        f"({', '.join(sorted(READERS))}; a folder of .dm4 for Gatan in-situ)"
    )
