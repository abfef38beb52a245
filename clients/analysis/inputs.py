"""Inputs of ``lptem analyze``: lptem records, SAM-EM's trajectories.csv and trackpy tables."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lptem.engine.msd import positions_by_frame
from lptem.service.exports import read_record, samem_angle_deg
from lptem.service.record import RECORD_FILE, iter_entries

log = logging.getLogger("lptem.analyze")

EPOCH_GAP_FRAMES = 100_000
"""Frames left empty between camera epochs of a record, so that no MSD pair spans a restart."""
MAX_LAG_FRAMES = 10_000
"""Largest lag ``lptem analyze`` accepts (below EPOCH_GAP_FRAMES, so epochs stay apart)."""


class AnalyzeError(ValueError):
    """Input that cannot be analysed; the message says why."""


@dataclass(frozen=True)
class Trajectories:
    table: pd.DataFrame
    """Columns frame, particle, x, y (px) and, if known, angle (degrees). Records add shown_frame,
    the frame count for time axes without the gaps that separate camera epochs."""
    pixel_size_nm: float | None
    frame_time_s: float | None
    source: str
    symmetry: int | None = None
    """The angles' symmetry when the source says (a record of ``-E symmetry=N``); else unknown."""

    @property
    def length_unit(self) -> str:
        return "nm" if self.pixel_size_nm else "px"

    @property
    def time_unit(self) -> str:
        return "s" if self.frame_time_s else "frame"

    @property
    def time_column(self) -> str:
        """Name of a lag / time column in the tables: its unit in the name."""
        return "lag_s" if self.frame_time_s else "lag_frames"

    @property
    def msd_unit(self) -> str:
        """MSD unit as written in column names: nm2 or px2."""
        return f"{self.length_unit}2"

    @property
    def diffusion_unit(self) -> str:
        return f"{self.length_unit}²/{self.time_unit}^α"

    def scale(self) -> float:
        """Length unit per pixel."""
        return self.pixel_size_nm or 1.0

    def dt(self) -> float:
        """Time unit per frame."""
        return self.frame_time_s or 1.0

    def times(self, rows: pd.DataFrame) -> np.ndarray:
        """Time of ``rows`` (time unit) for plotting."""
        frames = rows["shown_frame"] if "shown_frame" in rows.columns else rows["frame"]
        return np.asarray(frames.to_numpy(dtype=np.float64) * self.dt())

    def has_angles(self) -> bool:
        return "angle" in self.table.columns and bool(self.table["angle"].notna().any())

    def dense_angles(self, min_frames: int) -> dict[int, np.ndarray]:
        """Per particle with at least ``min_frames`` angles: (n_frames,) θ in degrees, NaN in gaps."""
        out: dict[int, np.ndarray] = {}
        if not self.has_angles():
            return out
        for particle, rows in self.table.dropna(subset=["angle"]).groupby("particle"):
            if len(rows) >= min_frames:
                angles = rows["angle"].to_numpy(dtype=np.float64)
                _, dense = positions_by_frame(rows["frame"], np.stack([angles, angles], axis=1))
                out[int(particle)] = dense[:, 0]
        return out

    def dense(self, min_frames: int) -> dict[int, np.ndarray]:
        """Per particle with at least ``min_frames`` positions: (n_frames, 2) positions in the length
        unit, NaN in gaps."""
        out = {}
        for particle, rows in self.table.groupby("particle"):
            if len(rows) >= min_frames:
                _, xy = positions_by_frame(rows["frame"], rows[["x", "y"]].to_numpy() * self.scale())
                out[int(particle)] = xy
        return out


def load(path: Path, pixel_size_nm: float | None = None, fps: float | None = None) -> Trajectories:
    """Read a record folder or a trajectory table; ``pixel_size_nm`` / ``fps`` override what it carries."""
    if path.is_dir():
        return _load_record(path, pixel_size_nm, fps)
    if not path.exists():
        raise AnalyzeError(f"{path}: no such file or folder")
    if (path.parent / "record.msgpack").exists():
        log.warning(
            "%s is an export of the record %s, numbered straight through camera restarts; analyse the "
            "folder instead to keep restarts apart",
            path.name,
            path.parent,
        )
    table = _read_table(path)
    samem = "particle_id" in table.columns and "particle" not in table.columns
    if samem:
        table = table.rename(columns={"particle_id": "particle"})
    missing = {"frame", "particle", "x", "y"} - set(table.columns)
    if missing:
        raise AnalyzeError(f"{path}: missing columns {sorted(missing)} (has {list(table.columns)})")
    columns = ["frame", "particle", "x", "y"] + (["angle"] if "angle" in table.columns else [])
    table = _numeric(table[columns], path).dropna(subset=["frame", "particle", "x", "y"])
    if samem and "angle" in table.columns:  # skimage's orientation -> our θ (the map is its own inverse)
        table["angle"] = samem_angle_deg(table["angle"].to_numpy())
    for column in ("frame", "particle"):
        if not np.all(table[column] == np.round(table[column])):
            raise AnalyzeError(f"{path}: column {column!r} holds non-integer values")
    table = table.astype({"frame": "int64", "particle": "int64"})
    if table.duplicated(["frame", "particle"]).any():
        raise AnalyzeError(f"{path}: a particle appears twice in one frame")
    return Trajectories(table, pixel_size_nm, 1 / fps if fps else None, str(path))


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:  # pandas' parser errors are ValueErrors
        raise AnalyzeError(f"{path}: unreadable ({exc})") from exc


def _numeric(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    try:
        numbers = table.apply(pd.to_numeric)
    except (ValueError, TypeError) as exc:
        raise AnalyzeError(f"{path}: a column holds non-numeric values ({exc})") from exc
    finite = np.isfinite(numbers.to_numpy(dtype=np.float64)) | numbers.isna().to_numpy()
    if not finite.all():
        raise AnalyzeError(f"{path}: infinite values in the table")
    return numbers


def _load_record(folder: Path, pixel_size_nm: float | None, fps: float | None) -> Trajectories:
    tracks, frames = _record_tables(folder)
    seen = tracks[tracks["visible"]].rename(columns={"theta_deg": "angle"})
    if seen.empty:
        raise AnalyzeError(f"{folder}: the record holds no visible object")
    frames_per_epoch = int(tracks["frame"].max()) + 1
    epoch_rank = seen["epoch"].rank(method="dense").astype("int64") - 1
    seen = seen.assign(
        frame=seen["frame"] + epoch_rank * (frames_per_epoch + EPOCH_GAP_FRAMES),
        shown_frame=seen["frame"] + epoch_rank * frames_per_epoch,
    )
    if pixel_size_nm is None:
        pixel_size_nm = _record_pixel_size(seen)
    frame_time = 1 / fps if fps else _frame_time(frames)
    table = seen[["frame", "particle", "x", "y", "angle", "shown_frame"]].reset_index(drop=True)
    return Trajectories(table, pixel_size_nm, frame_time, str(folder), _record_symmetry(folder))


def _record_symmetry(folder: Path) -> int | None:
    """The ``-E symmetry=N`` the recording daemon ran with, if the record says."""
    if not (folder / RECORD_FILE).exists():
        return None
    kind, session = next(iter_entries(folder), ("", {}))
    value = session.get("engine_options", {}).get("symmetry") if kind == "session" else None
    return int(value) if value is not None else None


def _record_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if (folder / "trajectories.parquet").exists():
        return pd.read_parquet(folder / "trajectories.parquet"), pd.read_parquet(folder / "frames.parquet")
    if (folder / "record.msgpack").exists():
        record = read_record(folder)
        return record.tracks, record.frames
    raise AnalyzeError(f"{folder}: not an lptem record (no trajectories.parquet or record.msgpack)")


def _record_pixel_size(seen: pd.DataFrame) -> float | None:
    """nm/px from the positions the daemon published in both units (None if it never knew it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (seen["x_nm"] / seen["x"]).to_numpy(dtype=np.float64)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    return float(np.median(ratio)) if ratio.size else None


def _frame_time(frames: pd.DataFrame) -> float | None:
    """Median camera time per frame (s) from the timestamps, within each epoch."""
    per_frame = []
    for _, epoch in frames.groupby("epoch"):
        ordered = epoch.sort_values("frame")
        steps = np.diff(ordered["frame"].to_numpy())
        ticks = np.diff(ordered["t_ns"].to_numpy())
        per_frame.append(ticks[steps > 0] / steps[steps > 0] / 1e9)
    pooled = np.concatenate(per_frame) if per_frame else np.empty(0)
    if pooled.size == 0:
        return None
    value = float(np.median(pooled))
    return value if value > 0 and math.isfinite(value) else None
