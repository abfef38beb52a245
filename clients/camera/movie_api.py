"""What every movie reader gives: the Movie protocol, its error, frames as the wire takes them, the order
of numbered files. (lptem.clients.camera.movies opens a path with the reader for its format.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

WIRE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class MovieError(ValueError):
    """A path that is not a readable movie; the message says why."""


class Movie(Protocol):
    path: Path
    pixel_size_nm: float | None
    """From the file's calibration (nm/px), None when it carries none."""
    frame_time_s: float | None
    """From the file's metadata (s between frames), None when it carries none."""

    def __len__(self) -> int: ...

    def frame(self, index: int) -> npt.NDArray[Any]: ...

    def close(self) -> None:
        """Release open files."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """Context-manager support for movies: ``with open_movie(path) as movie: ...``; no calibration."""

    pixel_size_nm: float | None = None
    frame_time_s: float | None = None

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


def natural_key(path: Path) -> tuple[Any, ...]:
    """Sort ``frame2.jpg`` before ``frame10.jpg`` (SAM-EM numbers frames without zero padding), and
    ``Minute_2/...`` before ``Minute_10/...``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix()))


def iter_frames(
    movie: Movie, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, npt.NDArray[Any]]]:
    for index in range(start, len(movie) if stop is None else min(stop, len(movie))):
        yield index, movie.frame(index)
