"""Electron-microscopy movie files through RosettaSciIO (HyperSpy's readers; the optional extra
``lptem-live[formats]``): DigitalMicrograph .dm3/.dm4 (stacks, and Gatan in-situ folders of one file per
frame), MRC/MRCS, TIA .emi/.ser and Velox .emd.

Files open lazily (dask arrays over the file, memory-mapped where the format allows), and a frame is read
only when it is sent, so a movie larger than memory replays in bounded memory. The pixel size (nm) comes
from the image axes' calibration, converted from the file's unit; the frame time (s) from a time axis, or
from a Direct Electron camera's ``*_info.txt`` beside an MRC movie. Either may be unknown (None).
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lptem.clients.camera.movie_api import Closing, MovieError, natural_key

READERS = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".mrc": "mrc", ".mrcs": "mrc",
           ".emi": "tia", ".ser": "tia", ".emd": "emd"}  # fmt: skip
"""File suffix -> RosettaSciIO plugin."""
LENGTH_NM = {"m": 1e9, "mm": 1e6, "µm": 1e3, "μm": 1e3, "um": 1e3, "nm": 1.0, "Å": 0.1, "A": 0.1,
             "angstrom": 0.1, "pm": 1e-3}  # fmt: skip
"""Length units as the readers spell them (µ as micro sign or Greek mu) -> nm."""
TIME_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "ns": 1e-9}
_READER_OPTIONS: dict[str, dict[str, Any]] = {"mrc": {"chunks": (1, -1, -1)}}
"""One frame per dask chunk where the reader maps the file: reading a frame then reads only that frame."""
_EXACT = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def read_em(path: Path) -> dict[str, Any]:
    """The first dataset of ``path`` that is one image or a stack of images (RosettaSciIO's dict), lazy."""
    plugin = READERS[path.suffix.lower()]
    try:
        reader = importlib.import_module(f"rsciio.{plugin}")
    except ModuleNotFoundError as exc:
        raise MovieError(
            f"{path}: reading {path.suffix} needs RosettaSciIO: pip install 'lptem-live[formats]'"
        ) from exc
    try:
        with warnings.catch_warnings():
            # RosettaSciIO 0.15's MRC reader opens the file for its header and leaves it to the garbage
            # collector, which closes it as the reader returns; that is its ResourceWarning, not a leak here.
            warnings.simplefilter("ignore", ResourceWarning)
            datasets = reader.file_reader(str(path), lazy=True, **_READER_OPTIONS.get(plugin, {}))
    except Exception as exc:
        raise MovieError(f"{path}: not a readable {path.suffix} file ({type(exc).__name__}: {exc})") from exc
    for dataset in datasets:
        signal = [a for a in dataset["axes"] if not a.get("navigate", False)]
        if len(signal) == 2 and dataset["data"].ndim in (2, 3):
            return dict(dataset)
    shapes = [tuple(d["data"].shape) for d in datasets]
    raise MovieError(f"{path}: no image or image stack in it (datasets of shape {shapes})")


def pixel_size_nm(axes: list[dict[str, Any]]) -> float | None:
    """The image axes' pixel size in nm; None when uncalibrated, in an unknown unit, or not square."""
    sizes = []
    for axis in axes:
        if axis.get("navigate", False):
            continue
        factor = LENGTH_NM.get(str(axis.get("units") or "").strip())
        scale = float(axis.get("scale", 0) or 0)
        if factor is None or not scale > 0:
            return None
        sizes.append(scale * factor)
    if len(sizes) != 2 or not math.isclose(sizes[0], sizes[1], rel_tol=1e-3):
        return None
    return sizes[0]


def time_axis_s(axes: list[dict[str, Any]]) -> float | None:
    """The frame time (s) of a navigation axis calibrated in time, else None."""
    for axis in axes:
        factor = TIME_S.get(str(axis.get("units") or "").strip())
        scale = float(axis.get("scale", 0) or 0)
        if axis.get("navigate", False) and factor is not None and scale > 0:
            return scale * factor
    return None


def de_info_frame_time_s(movie: Path) -> float | None:
    """``Frames Per Second`` from a Direct Electron ``PREFIX_info.txt`` beside ``PREFIX_movie.mrc``."""
    prefix = movie.stem.rsplit("_", 1)[0]
    info = movie.with_name(f"{prefix}_info.txt")
    if not info.is_file():
        return None
    match = re.search(r"^Frames Per Second\s*=\s*([0-9.eE+-]+)\s*$", info.read_text(errors="replace"), re.M)
    fps = float(match.group(1)) if match else 0.0
    return 1.0 / fps if fps > 0 else None


def wire_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """One dtype for the whole movie: uint8, uint16 and float32 as they are, everything else float32 (exact
    for integers up to 2^24, i.e. every 8-, 16- and 24-bit camera)."""
    return dtype if dtype in _EXACT else np.dtype(np.float32)


@dataclass
class EmMovie(Closing):
    """One EM file as a movie (module docstring)."""

    path: Path
    pixel_size_nm: float | None = field(init=False, default=None)
    frame_time_s: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        dataset = read_em(self.path)
        data = dataset["data"]
        self._data = data if data.ndim == 3 else data[None]
        self._dtype = wire_dtype(np.dtype(data.dtype))
        self.pixel_size_nm = pixel_size_nm(dataset["axes"])
        self.frame_time_s = time_axis_s(dataset["axes"])
        if self.frame_time_s is None and self.path.suffix.lower() in (".mrc", ".mrcs"):
            self.frame_time_s = de_info_frame_time_s(self.path)

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def frame(self, index: int) -> npt.NDArray[Any]:
        try:
            image = np.asarray(self._data[index].compute())
        except (OSError, ValueError) as exc:  # a file truncated after its header
            raise MovieError(f"{self.path}: frame {index} cannot be read ({exc})") from exc
        return image.astype(self._dtype, copy=False)

    def close(self) -> None:
        files = importlib.import_module("rsciio.utils.file")  # rsciio is there: it opened the file
        handle = files.get_file_handle(self._data)
        if handle is not None:
            handle.close()


@dataclass
class DmFolderMovie(Closing):
    """A Gatan in-situ folder: one .dm4 (or .dm3) per frame, in any sub-folders (``Hour_00/Minute_00/...``),
    in natural order of their paths; each file is read when its frame is sent."""

    path: Path
    pixel_size_nm: float | None = field(init=False, default=None)
    frame_time_s: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._files = dm_files(self.path)
        if not self._files:
            raise MovieError(f"{self.path}: no .dm4 or .dm3 files in this folder")
        first = EmMovie(self._files[0])
        self.pixel_size_nm = first.pixel_size_nm
        first.close()

    def __len__(self) -> int:
        return len(self._files)

    def frame(self, index: int) -> npt.NDArray[Any]:
        with EmMovie(self._files[index]) as movie:
            if len(movie) != 1:
                raise MovieError(
                    f"{self._files[index]}: {len(movie)} frames in one file of an in-situ folder"
                )
            return movie.frame(0)


def dm_files(folder: Path) -> list[Path]:
    """The DigitalMicrograph files under ``folder``, in natural order of their relative paths."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in (".dm4", ".dm3") and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder)))
