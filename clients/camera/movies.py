"""Recorded movies as frame sources: TIFF stacks, folders of numbered JPEG/PNG/TIFF images (SAM-EM's
layout), and ``.npy`` arrays. Frames are read lazily, one at a time, so a movie larger than memory
replays fine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import cv2
import numpy as np
import numpy.typing as npt
import tifffile

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
WIRE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class MovieError(ValueError):
    """A path that is not a readable movie; the message says why."""


class Movie(Protocol):
    path: Path

    def __len__(self) -> int: ...

    def frame(self, index: int) -> npt.NDArray[Any]: ...

    def close(self) -> None:
        """Release open files."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class _Closing:
    """Context-manager support for movies: ``with open_movie(path) as movie: ...``."""

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_wire_frame(image: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Grayscale uint8 / uint16 / float32: colour is averaged, other dtypes are converted losslessly."""
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3].mean(axis=2)  # SAM-EM's JPEGs are grey stored as RGB
    if image.ndim != 2:
        raise MovieError(f"frames must be 2-D images, got shape {image.shape}")
    if image.dtype in WIRE_DTYPES:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8)
    if image.dtype.kind in "iu" and image.size and image.min() >= 0 and image.max() <= 65535:
        return image.astype(np.uint16)
    return image.astype(np.float32)


@dataclass
class NpyMovie(_Closing):
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
class TiffMovie(_Closing):
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


def _natural_key(path: Path) -> tuple[Any, ...]:
    """Sort ``frame2.jpg`` before ``frame10.jpg`` (SAM-EM numbers frames without zero padding)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


@dataclass
class FolderMovie(_Closing):
    path: Path

    def __post_init__(self) -> None:
        self._files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
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
    path = Path(path)
    if path.is_dir():
        return FolderMovie(path)
    if not path.exists():
        raise MovieError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyMovie(path)
    if suffix in (".tif", ".tiff"):
        return TiffMovie(path)
    raise MovieError(f"{path}: unsupported movie; use a TIFF stack, a .npy array or a folder of images")


def iter_frames(
    movie: Movie, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, npt.NDArray[Any]]]:
    for index in range(start, len(movie) if stop is None else min(stop, len(movie))):
        yield index, movie.frame(index)
